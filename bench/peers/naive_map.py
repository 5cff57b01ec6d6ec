"""The hand-written mapping a user's own script would have: a sheet row of ``sample_data/jicoo``'s columns
to Jicoo's ``POST /bookings`` body (the same fields as ``mappings/jicoo.yaml``, without its checks).

Standard library only: the pandas + requests script and the dlt sink (another virtualenv) both use it.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

EVENT_TYPES = {"Initial consultation": "mzgdPJVBb7RE", "Follow-up call": "k3Jd9QpLx2Wa", "Workshop": "T7vNc4RsY8eb"}
MEETINGS = {"In person": "inPerson", "Phone": "phone", "Zoom": "zoom", "Google Meet": "googleMeet",
            "Teams": "teams", "Ask the guest": "askInvitee"}
LOCALES = {"en": "en", "ja": "ja", "english": "en", "japanese": "ja"}
API_KEY_HEADER = "X-Jicoo-Api-Key"


def booking(row: dict[str, str]) -> dict[str, str]:
    """Jicoo's body for one row (``row``: column name -> cell text)."""
    zone = row["Time Zone"].strip() or "Europe/London"
    local = dt.datetime.strptime(f"{row['Date'].strip()} {row['Start Time'].strip()}", "%d/%m/%Y %H:%M")
    start = local.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)
    body = {
        "eventTypeId": EVENT_TYPES[row["Event Type"].strip()],
        "startedAt": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "timeZone": zone,
        "name": " ".join(row["Guest Name"].split()),
        "email": row["Email"].strip().lower(),
        "phoneNumber": row["Phone"].strip(),
        "company": row["Company"].strip(),
        "locationId": MEETINGS[row["Meeting"].strip() or "In person"],
        "message": row["Notes"].strip(),
        "locale": LOCALES.get(row["Language"].strip().lower(), ""),
    }
    return {k: v for k, v in body.items() if v}
