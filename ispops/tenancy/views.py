"""The platform page on the public host: list ISPs, create one."""

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import redirect

from ispops.lib.htmx import render_partial
from ispops.staff.access import platform_admin
from ispops.tenancy import services, tasks
from ispops.tenancy.forms import NewIspForm
from ispops.tenancy.models import Isp


@platform_admin
def isp_list(request):
    form = NewIspForm(request.POST or None, platform_domain=settings.PLATFORM_DOMAIN)
    if request.method == "POST" and form.is_valid():
        isp = services.register_isp(actor=request.user, **form.cleaned)
        transaction.on_commit(lambda: tasks.provision_isp.delay(isp.id))
        messages.success(request, f"{isp.name} is being created; it turns active in a moment.")
        return redirect("platform:isps")
    isps = Isp.objects.exclude(schema_name="public").prefetch_related("domains")
    page = Paginator(isps, 25).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "provisioning": any(i.status == Isp.Status.PROVISIONING for i in page),
        "platform_domain": settings.PLATFORM_DOMAIN,
        "port_suffix": "" if request.get_port() in ("80", "443") else f":{request.get_port()}",
    }
    return render_partial(request, "tenancy/isp_list.html", "isp-table", context)
