"""Check a running notes server: log in, add a note with an attachment, read part of it back.

python smoke.py http://127.0.0.1:8000 alice
NOTES_PASSWORD=... python smoke.py https://notes.example.com alice
"""

from __future__ import annotations

import getpass
import os
import re
import sys
import uuid
from http.cookiejar import CookieJar
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener


def multipart(url: str, fields: dict[str, str], file: tuple[str, str, bytes]) -> Request:
    """A POST of a form with text fields and one file ``(field, filename, data)``, as a browser
    sends it."""
    name, filename, data = file
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"'
    parts.append(f"{head}\r\nContent-Type: text/plain\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return Request(url, body, {"content-type": f"multipart/form-data; boundary={boundary}"})


def check(base: str, user: str, password: str) -> None:
    """Raise ``AssertionError`` unless the server at ``base`` works end to end."""
    browser = build_opener(HTTPCookieProcessor(CookieJar()))  # keeps the session cookie
    with browser.open(f"{base}/login", urlencode({"name": user, "password": password}).encode()):
        pass  # NOTE: a wrong password gets 400, which urllib raises as HTTPError
    data = b"0123456789" * 100
    fields = {"title": "Smoke test", "body": "from smoke.py"}
    form = multipart(f"{base}/notes", fields, ("attachment", "digits.txt", data))
    with browser.open(form) as page:  # 303 to the new note's page, which urllib follows
        html = page.read().decode()
    found = re.search(r'href="([^"]*/files/\d+)"', html)
    assert "Smoke test" in html and found, "the note's page has no attachment"
    with browser.open(Request(base + found.group(1), headers={"range": "bytes=10-19"})) as part:
        assert part.status == 206, part.status
        assert part.read() == data[10:20]
    print(f"ok: {page.url}")


if __name__ == "__main__":
    base_url, name = sys.argv[1].rstrip("/"), sys.argv[2]
    check(base_url, name, os.environ.get("NOTES_PASSWORD") or getpass.getpass())
