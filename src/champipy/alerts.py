"""Alerts to a webhook (Slack, Mattermost, a monitoring system): best effort, never raising."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from .settings import Settings

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0


def post_alert(settings: Settings, payload: dict[str, Any], timeout: float = TIMEOUT_SECONDS) -> bool:
    """POST ``payload`` as JSON to ``alert_webhook_url``; True when it answered 2xx.

    An alert must never break the check that raised it, so every failure is logged and
    reported as False.
    """
    url = settings.alert_webhook_url
    if not url:
        logger.info("No alert webhook configured; alert not sent: %s", payload)
        return False
    # Webhook URLs often carry their token in the path, so logs name the host only.
    where = urlsplit(url).netloc or "(invalid URL)"
    try:
        response = httpx.post(url, json=payload, timeout=timeout)
    except Exception as exc:
        logger.warning("Alert webhook at %s failed: %s", where, type(exc).__name__)
        return False
    if not response.is_success:
        logger.warning("Alert webhook at %s answered %s", where, response.status_code)
        return False
    return True
