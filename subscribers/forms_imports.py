"""The CSV upload form of the imports page."""

from django import forms
from django.template.defaultfilters import filesizeformat

from subscribers.models import ImportJob

MAX_UPLOAD_BYTES = 20 * 1024 * 1024

# The columns each kind of file needs, exactly as the operator contract states them.
COLUMNS = {
    ImportJob.Kind.PLANS: "name,price,cycle,download,upload,service[,billing][,data_cap_gb]",
    ImportJob.Kind.SUBSCRIBERS: (
        "account,name,phone,email,plan,username,password,router,status[,expires]"
    ),
}
COLUMN_NOTES = {
    ImportJob.Kind.PLANS: (
        "cycle: monthly|weekly|daily|hourly; speeds like 10M; service: pppoe|hotspot|static; "
        "billing: prepaid|postpaid (default: the ISP's setting). Columns are found by the "
        "header's names, so optional ones may be left out."
    ),
    ImportJob.Kind.SUBSCRIBERS: (
        "status: active|suspended|lead; expires: YYYY-MM-DD (the account works through that "
        "day); a blank account gets the next number of the ISP's pattern. All rows or none: "
        "a file with a bad row imports nothing."
    ),
}


class ImportForm(forms.Form):
    kind = forms.ChoiceField(choices=ImportJob.Kind.choices, label="What the file holds")
    file = forms.FileField(
        label="CSV file (UTF-8)",
        help_text=f"At most {filesizeformat(MAX_UPLOAD_BYTES)}; the first line names the columns.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    dry_run = forms.BooleanField(
        required=False,
        label="Dry run: check the file and count the rows, write nothing",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is {filesizeformat(upload.size)}; "
                f"at most {filesizeformat(MAX_UPLOAD_BYTES)} can be imported at once."
            )
        raw = upload.read()
        try:
            # utf-8-sig drops the byte-order mark Excel writes, as the commands do.
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError(
                "The file is not UTF-8 text. Save it as 'CSV UTF-8' and upload it again."
            ) from None
        if "\x00" in text:
            # PostgreSQL text cannot hold NUL, and no CSV has one: likely a spreadsheet.
            raise forms.ValidationError("This is not a CSV text file. Save it as CSV UTF-8.")
        self.text = text
        return upload
