from celery import shared_task

from ispops.staff import services


@shared_task
def purge_login_failures() -> int:
    return services.purge_login_failures()
