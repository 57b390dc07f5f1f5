"""Staff users, their roles and branches, and the failed-login record used for throttling.

The same tables exist in every schema: an ISP's staff live in that ISP's schema, the
platform's own admins in the public schema, so a login on one host can never see a
user of another ISP.
"""

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    FINANCE = "finance", "Finance"
    SUPPORT = "support", "Support"
    TECHNICIAN = "technician", "Technician"
    # Sells hotspot vouchers: sees only their own batches, sales and ledger
    # (hotspot.views_agents), none of the ISP's staff pages (access.ALL_STAFF).
    AGENT = "agent", "Voucher agent"


class BranchQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Branches a staff member may see: all, unless they are limited to some."""
        allowed = user.branch_ids()
        return self if allowed is None else self.filter(id__in=allowed)


class Branch(models.Model):
    name = models.CharField(max_length=120, unique=True)
    code = models.SlugField(max_length=20, unique=True)
    address = models.CharField(max_length=255, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    is_active = models.BooleanField(default=True)

    objects = BranchQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "branches"

    def __str__(self):
        return self.name


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("A staff user needs an email address")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_superuser=True, is_staff=True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in. `role` is blank for platform admins (public schema)."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    # Empty means "all branches"; otherwise lists and figures are limited to these.
    branches = models.ManyToManyField(Branch, blank=True, related_name="staff")
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Platform admin (public schema).")
    date_joined = models.DateTimeField(default=timezone.now)
    invited_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["full_name", "email"]

    def __str__(self):
        return self.full_name or self.email

    def has_role(self, *roles) -> bool:
        return self.is_active and self.role in roles

    def branch_ids(self) -> set[int] | None:
        """Ids of the branches this user is limited to, or None for all branches."""
        if not hasattr(self, "_branch_ids"):
            ids = set(self.branches.values_list("id", flat=True))
            self._branch_ids = ids or None
        return self._branch_ids


class LoginFailure(models.Model):
    """One failed login. Counted per login name and per address to throttle guessing."""

    username = models.CharField(max_length=254)
    ip = models.GenericIPAddressField(null=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        # The throttle counts recent failures by login name and by address.
        indexes = [
            models.Index(fields=["username", "at"], name="loginfailure_user_at"),
            models.Index(fields=["ip", "at"], name="loginfailure_ip_at"),
        ]

    def __str__(self):
        return f"{self.username} from {self.ip} at {self.at:%Y-%m-%d %H:%M}"
