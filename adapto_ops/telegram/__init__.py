"""The platform's Telegram bot as adapto manages it: its webhook over the Bot API."""
