from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "ispops.messaging"
    label = "messaging"
    verbose_name = "Messaging"

    def ready(self):
        from ispops import audit
        from ispops.messaging.models import MessageTemplate, SmsSettings

        # Messages are not audited: the message log is itself the record.
        audit.register(MessageTemplate, exclude=["updated_at"])
        audit.register(SmsSettings, secret=["api_key"])
        from ispops.messaging import settings_section

        settings_section.register()
