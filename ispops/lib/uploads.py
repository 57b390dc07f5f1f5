"""Serving a file someone uploaded (a ticket photo) back to those allowed to see it:
shown inline, never sniffed into another type, never able to run script, kept out of
shared caches. The caller has checked who may see it."""

from django.http import FileResponse, Http404


def private_file_response(field_file, content_type: str) -> FileResponse:
    try:
        handle = field_file.open("rb")
    except FileNotFoundError:
        raise Http404("the file is missing") from None
    response = FileResponse(handle, content_type=content_type)
    response["Content-Disposition"] = "inline"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response
