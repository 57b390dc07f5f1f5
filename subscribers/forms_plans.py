"""Forms of the plans and network map pages."""

from django import forms

from ispops.staff.models import Branch
from subscribers.models import NetworkSite, Plan
from subscribers.services import SubscriberError, format_speed, parse_speed


class SpeedField(forms.CharField):
    """A speed typed as text ("10M", "512k", "1.5M"), cleaned to kbps (None when blank)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Like 10M or 512k.")
        attrs = {"placeholder": "10M", "maxlength": "12", "autocomplete": "off"}
        super().__init__(widget=forms.TextInput(attrs=attrs), **kwargs)

    def prepare_value(self, value):
        # The stored kbps shown as typed; what the user typed is shown back as is.
        return format_speed(value) if isinstance(value, int) else value

    def to_python(self, value):
        text = super().to_python(value).strip()
        if not text:
            return None
        try:
            return parse_speed(text)
        except SubscriberError as exc:
            raise forms.ValidationError(str(exc), code="bad_speed") from None


class PlanForm(forms.ModelForm):
    download_kbps = SpeedField(label="Download speed")
    upload_kbps = SpeedField(label="Upload speed")
    burst_download_kbps = SpeedField(label="Burst download", required=False)
    burst_upload_kbps = SpeedField(label="Burst upload", required=False)
    fup_download_kbps = SpeedField(
        label="FUP download", required=False, help_text="Speed after the data cap is used up."
    )
    fup_upload_kbps = SpeedField(label="FUP upload", required=False)

    class Meta:
        model = Plan
        fields = [
            "name",
            "price",
            "cycle",
            "billing",
            "service",
            "download_kbps",
            "upload_kbps",
            "burst_download_kbps",
            "burst_upload_kbps",
            "burst_seconds",
            "data_cap_gb",
            "fup_download_kbps",
            "fup_upload_kbps",
            "top_up_gb",
            "top_up_price",
            "description",
            "is_active",
        ]
        labels = {
            "price": "Price (KES)",
            "data_cap_gb": "Data cap (GB)",
            "is_active": "Active (offered to new subscribers)",
        }
        help_texts = {
            "data_cap_gb": "Leave empty for unlimited data.",
            "top_up_gb": "Extra data a subscriber can buy in the portal; empty: not sold.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["price"].min_value = 0
        self.fields["price"].widget.attrs.update(min="0", step="0.01")

    def clean(self):
        data = super().clean()
        self._check_pair(data, "burst_download_kbps", "burst_upload_kbps", "burst")
        self._check_pair(data, "fup_download_kbps", "fup_upload_kbps", "FUP")
        for direction in ("download", "upload"):
            base = data.get(f"{direction}_kbps")
            burst = data.get(f"burst_{direction}_kbps")
            fup = data.get(f"fup_{direction}_kbps")
            if base and burst and burst < base:
                self.add_error(
                    f"burst_{direction}_kbps",
                    f"burst must be at least the {direction} speed ({format_speed(base)})",
                )
            if base and fup and fup > base:
                self.add_error(
                    f"fup_{direction}_kbps",
                    f"the FUP speed cannot be above the {direction} speed ({format_speed(base)})",
                )
        has_fup = data.get("fup_download_kbps") or data.get("fup_upload_kbps")
        if has_fup and not data.get("data_cap_gb"):
            self.add_error("fup_download_kbps", "a FUP speed needs a data cap")
        if (data.get("top_up_gb") is None) != (data.get("top_up_price") is None):
            if not self.has_error("top_up_gb") and not self.has_error("top_up_price"):
                self.add_error("top_up_gb", "give both the pack's GB and its price, or neither")
        elif data.get("top_up_gb") and not data.get("data_cap_gb"):
            self.add_error("top_up_gb", "a top-up pack needs a data cap")
        return data

    def _check_pair(self, data, down, up, what):
        if self.has_error(down) or self.has_error(up):
            return
        if (data.get(down) is None) != (data.get(up) is None):
            self.add_error(down, f"give both {what} speeds, or neither")


class SiteForm(forms.ModelForm):
    """A network site; `user` limits the parents and branches offered to what they see."""

    class Meta:
        model = NetworkSite
        fields = ["name", "kind", "parent", "branch", "capacity", "latitude", "longitude", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, user, sites, **kwargs):
        super().__init__(*args, **kwargs)
        parents = sites.select_related(None).order_by("name")
        if self.instance.pk:
            parents = parents.exclude(pk=self.instance.pk)
        self.fields["parent"].queryset = parents
        self.fields["parent"].help_text = "The node it hangs from; empty for a POP."
        self.fields["branch"].queryset = Branch.objects.visible_to(user)
        if user.branch_ids() is not None:
            # Staff limited to some branches keep their sites inside them.
            self.fields["branch"].required = True
            self.fields["branch"].empty_label = None

    def clean_parent(self):
        parent = self.cleaned_data.get("parent")
        if parent is None or self.instance.pk is None:
            return parent
        # One query for the whole forest, then walk up from the new parent.
        parent_of = dict(NetworkSite.objects.values_list("id", "parent_id"))
        node, seen = parent.pk, set()
        while node is not None and node not in seen:
            if node == self.instance.pk:
                raise forms.ValidationError(
                    "a site cannot hang below itself or one of its own children",
                    code="cycle",
                )
            seen.add(node)
            node = parent_of.get(node)
        return parent

    def clean_latitude(self):
        return _in_range(self.cleaned_data.get("latitude"), 90, "latitude")

    def clean_longitude(self):
        return _in_range(self.cleaned_data.get("longitude"), 180, "longitude")

    def clean(self):
        data = super().clean()
        lat, lon = data.get("latitude"), data.get("longitude")
        if (lat is None) != (lon is None) and not self.errors:
            self.add_error("latitude", "give both latitude and longitude, or neither")
        return data


def _in_range(value, limit, what):
    if value is not None and not -limit <= value <= limit:
        raise forms.ValidationError(f"{what} must be between -{limit} and {limit}")
    return value
