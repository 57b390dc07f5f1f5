"""Photos: only real images up to 8 MB are kept, in a per-ISP folder, and they are served
only to staff who may see the ticket (never to another ISP or another branch)."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from ispops.staff.models import Branch
from tickets import services
from tickets.models import Attachment

from .conftest import png_bytes


def _upload(client, ticket, name, content, content_type="image/png"):
    return client.post(
        f"/tickets/{ticket.pk}/photo/",
        {"photo": SimpleUploadedFile(name, content, content_type=content_type)},
    )


def test_a_photo_is_stored_per_isp_and_served_to_staff(alpha, make_ticket, media):
    with tenant_context(alpha.isp):
        ticket = make_ticket()
    client = alpha.client(alpha.technician)
    assert _upload(client, ticket, "router.png", png_bytes()).status_code == 302
    with tenant_context(alpha.isp):
        photo = Attachment.objects.get(ticket=ticket)
        assert ticket.events.filter(kind="attachment").exists()
    assert photo.file.name.startswith(f"tickets/alpha/{ticket.pk}/")
    assert (media / photo.file.name).read_bytes() == png_bytes()
    assert photo.content_type == "image/png"
    served = client.get(f"/tickets/photos/{photo.pk}/")
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content) == png_bytes()


def test_non_images_and_oversized_files_are_refused(alpha, make_ticket, media, settings):
    with tenant_context(alpha.isp):
        ticket = make_ticket()
    client = alpha.client(alpha.technician)
    fake = _upload(client, ticket, "photo.png", b"<html>not a photo</html>")
    assert fake.status_code == 400
    assert "not a photo" in fake.content.decode()
    pdf = _upload(client, ticket, "doc.pdf", b"%PDF-1.4 ...", content_type="application/pdf")
    assert pdf.status_code == 400
    big = png_bytes() + b"\0" * services.MAX_PHOTO_BYTES
    too_big = _upload(client, ticket, "big.png", big)
    assert too_big.status_code == 400 and "too big" in too_big.content.decode()
    with tenant_context(alpha.isp):
        assert not Attachment.objects.filter(ticket=ticket).exists()
    assert not list(media.rglob("*.*"))


def test_photos_are_not_served_to_another_isp_or_another_branch(alpha, beta, make_customer, media):
    with tenant_context(alpha.isp):
        far = Branch.objects.create(name="PH Far", code="ph-far")
        mine = Branch.objects.create(name="PH Mine", code="ph-mine")
        ticket = services.open_ticket(
            customer=make_customer(branch=far), subject="Dish", actor="test", tell_customer=False
        )
        upload = SimpleUploadedFile("dish.png", png_bytes(), content_type="image/png")
        photo = services.add_attachment(ticket, upload, actor="test")
        alpha.support.branches.set([mine])
    url = f"/tickets/photos/{photo.pk}/"
    assert alpha.client(alpha.owner).get(url).status_code == 200
    assert alpha.client(alpha.support).get(url).status_code == 404
    response = beta.client(beta.owner).get(url)
    assert response.status_code == 404
    assert alpha.client().get(url).status_code in (302, 403)  # not logged in
