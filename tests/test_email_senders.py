"""An e-mail's From proves nothing: its sender counts only with a DKIM signature of the bureau's
domain that verifies, or when the mail came through the trusted relay (issue 10).

The test signs mail with an RSA key it makes, and the DNS look-up of the signer's key is
replaced by the configured record (dkimpy's dnsfunc), as YUQING_DKIM_KEYS does.
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
from dataclasses import replace
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.driver import IncidentDriver
from workflows.incident import IncidentWorkflow
from yuqing import incident_workflow_id
from yuqing.email_intake import Senders, SmtpIntake, parse_email
from yuqing.intake import incident_id_for, intake_key
from yuqing.models import IncidentReport
from yuqing.roster import load_roster
from yuqing.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
DOMAIN = "aic.example"
SELECTOR = "mail2026"


def rsa_key() -> tuple[bytes, str]:
    """A private key (PEM) to sign with, and the DKIM TXT record that publishes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


BUREAU_PEM, BUREAU_RECORD = rsa_key()
OTHER_PEM, OTHER_RECORD = rsa_key()
RECORDS = {
    f"{SELECTOR}._domainkey.{DOMAIN}": BUREAU_RECORD,
    f"{SELECTOR}._domainkey.citizen.example": OTHER_RECORD,
}
SENDERS = Senders(domain=DOMAIN, records=RECORDS)


def signed(data: bytes, pem: bytes = BUREAU_PEM, domain: str = DOMAIN) -> bytes:
    signature = dkim.sign(
        data,
        SELECTOR.encode(),
        domain.encode(),
        pem,
        include_headers=[b"from", b"subject", b"date", b"message-id", b"to"],
    )
    return bytes(signature) + data


def director_mail() -> bytes:
    """What the issue sent: an e-mail claiming to come from the director."""
    return (
        b"From: Tang Guo <tang.guo@aic.example>\r\n"
        b"To: yuqing-intake@aic.example\r\n"
        b"Subject: =?utf-8?b?5pyJ5Lq65Zyo5b6u5Y2a5LiK6K+0?=\r\n"
        b"Date: Sat, 28 Nov 2026 09:30:00 +0800\r\n"
        b"Message-ID: <director-claim-1@aic.example>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"https://weibo.example/status/5000000777\r\n"
    )


def parse(
    data: bytes, settings: Settings, senders: Senders = SENDERS, **more: str
) -> IncidentReport:
    return parse_email(
        data,
        roster=load_roster(settings.roster_path),
        default_reporter="office-intake",
        unit="xixiangtang-branch",
        senders=senders,
        **more,
    )


def test_a_validly_signed_email_is_its_senders(settings: Settings) -> None:
    data = signed((FIXTURES / "hotline-recording-from-office.eml").read_bytes())
    report = parse(data, settings)
    assert report.reporter_id == "li.ming"  # Li.Ming@aic.example, whatever the case
    assert report.source is not None
    assert f"sender verified: DKIM d={DOMAIN} s={SELECTOR}" in report.source


def test_a_claimed_sender_without_a_valid_signature_is_not_believed(settings: Settings) -> None:
    unsigned = director_mail()
    cases = {
        "unsigned": unsigned,
        "signed, then changed": signed(unsigned).replace(b"5000000777", b"5000000778"),
        "signed by another domain": signed(unsigned, OTHER_PEM, "citizen.example"),
        "signed with a key the domain does not publish": signed(unsigned, OTHER_PEM),
    }
    for case, data in cases.items():
        report = parse(data, settings)
        assert report.reporter_id == "office-intake", case
        assert "tang.guo@aic.example (sender unverified" in (report.source or ""), case
    # No bureau domain configured: nobody is verified, however well signed.
    report = parse(signed(unsigned), settings, Senders(records=RECORDS))
    assert report.reporter_id == "office-intake"


def test_mail_through_the_trusted_relay_is_its_senders(settings: Settings) -> None:
    relayed = Senders(domain=DOMAIN, relays=frozenset({"10.0.0.25"}))
    report = parse(director_mail(), settings, relayed, peer="10.0.0.25")
    assert report.reporter_id == "tang.guo"
    assert "sender verified: trusted relay 10.0.0.25" in (report.source or "")
    report = parse(director_mail(), settings, relayed, peer="10.0.0.26")
    assert report.reporter_id == "office-intake"


def submit(port: int, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("tang.guo@aic.example", ["yuqing-intake@aic.example"], data)


async def test_the_smtp_intake_records_who_is_proven(
    driver: IncidentDriver, settings: Settings, tmp_path: Path
) -> None:
    records = tmp_path / "dkim.toml"
    lines = [f'"{name}" = "{text}"' for name, text in RECORDS.items()]
    records.write_text("[records]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    own = replace(
        settings, task_queue=driver.task_queue, email_domain=DOMAIN, dkim_keys_path=records
    )
    forged = director_mail()
    genuine = signed(forged.replace(b"5000000777", b"5000000999").replace(b"claim-1", b"claim-2"))
    async with SmtpIntake(driver.client, own, port=0) as intake:
        for data in (forged, genuine):
            await asyncio.to_thread(submit, intake.port, data)

    trails = {}
    for story in ("5000000777", "5000000999"):
        incident_id = incident_id_for(
            intake_key("email", url=f"https://weibo.example/status/{story}")
        )
        driver.handle = driver.client.get_workflow_handle_for(
            IncidentWorkflow.run, incident_workflow_id(incident_id)
        )
        state = await driver.until(lambda s: bool(s.deadlines))
        trails[story] = state.trail[0]
        await driver.terminate_if_running()
    forged_entry, genuine_entry = trails["5000000777"], trails["5000000999"]
    assert forged_entry.kind == "discovered" and forged_entry.actor == "office-intake"
    assert "tang.guo@aic.example (sender unverified" in (forged_entry.source or "")
    assert genuine_entry.actor == "tang.guo"
    assert f"sender verified: DKIM d={DOMAIN}" in (genuine_entry.source or "")
