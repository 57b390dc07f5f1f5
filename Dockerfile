# One image for every ispops process: web (the default command), Celery worker and
# beat (docker-compose.yml picks the command). Configuration comes from the
# environment at run time (README, "Configuration"); nothing secret is baked in.
FROM python:3.11-slim-bookworm

# WeasyPrint (invoice PDFs) needs Pango, HarfBuzz's subsetter and a font. Nothing else
# native is needed: psycopg and cryptography install as binary wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core fontconfig \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ISPOPS_VAR_DIR=/app/var \
    ISPOPS_DEBUG=0

WORKDIR /app

# Dependencies first, read from pyproject.toml, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself (no dev extras). pyproject.toml names README.md as the readme,
# so it must be in the build context (.dockerignore keeps it).
COPY . .
RUN pip install . && rm -rf build ./*.egg-info

# Run from the source tree: settings find templates/ and static/ relative to the
# ispops package, and the installed copy in site-packages has no templates.
ENV PYTHONPATH=/app

# Static files are collected into the image (ISPOPS_VAR_DIR/static). DEBUG=1 only
# here, so collecting needs no SECRET_KEY; the image itself defaults to ISPOPS_DEBUG=0.
RUN ISPOPS_DEBUG=1 python manage.py collectstatic --noinput -v 0 \
    && useradd --create-home --uid 10001 --user-group ispops \
    && mkdir -p var/media \
    && chown -R ispops:ispops var

USER ispops
EXPOSE 8000
CMD ["gunicorn", "ispops.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
