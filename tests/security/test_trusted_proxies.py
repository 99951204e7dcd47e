"""Forwarded addresses are believed only from the configured proxies: a request that
reaches the web process directly, with a forged X-Forwarded-For, is judged by its socket
address, for the audit log, the lockouts and the IP allowlist alike."""

import pytest
from django.test import override_settings

from accounts.roles import Role
from security.client_ip import client_ip
from security.models import AllowedNetwork, SecurityPolicy
from tests.config.test_settings_env import GOOD_PRODUCTION, manage
from tests.helpers import sign_in

PROXY_SETTINGS = {"TRUSTED_PROXY_COUNT": 1, "TRUSTED_PROXY_NETWORKS": ["10.0.0.0/8"]}


class FakeRequest:
    def __init__(self, remote, forwarded):
        self.META = {"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": forwarded}


@override_settings(**PROXY_SETTINGS)
def test_a_forged_header_from_outside_the_proxies_is_ignored():
    assert client_ip(FakeRequest("203.0.113.9", "10.1.2.3")) == "203.0.113.9"
    assert client_ip(FakeRequest("::ffff:203.0.113.9", "10.1.2.3")) == "203.0.113.9"


@override_settings(**PROXY_SETTINGS)
def test_the_header_from_a_configured_proxy_is_believed():
    assert client_ip(FakeRequest("10.0.0.2", "198.51.100.7")) == "198.51.100.7"


@override_settings(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXY_NETWORKS=[])
def test_no_configured_proxy_means_no_header_is_believed():
    assert client_ip(FakeRequest("10.0.0.2", "198.51.100.7")) == "10.0.0.2"


@pytest.fixture
def office_only(world):
    policy = SecurityPolicy.objects.create(entity=world.a, ip_allowlist_enabled=True)
    AllowedNetwork.objects.create(policy=policy, network="192.0.2.0/24", label="Office")
    return world


@override_settings(**PROXY_SETTINGS)
def test_an_allowlisted_address_forged_from_outside_still_gets_the_challenge(office_only, client):
    guest = office_only.users[Role.GUEST]
    forged = {"HTTP_X_FORWARDED_FOR": "192.0.2.10"}
    response = sign_in(client, guest, "203.0.113.9")
    assert response.status_code == 302
    page = client.get("/", REMOTE_ADDR="203.0.113.9", **forged)
    assert page["Location"] == "/account/verify-address/"


@override_settings(**PROXY_SETTINGS)
def test_the_same_address_through_the_proxy_passes(office_only, client):
    guest = office_only.users[Role.GUEST]
    via = {"HTTP_X_FORWARDED_FOR": "192.0.2.10"}
    client.post(
        "/accounts/login/",
        {"username": guest.email, "password": "Correct-Horse-42!"},
        REMOTE_ADDR="10.0.0.2",
        **via,
    )
    assert client.get("/", REMOTE_ADDR="10.0.0.2", **via).status_code == 200


def test_production_with_a_proxy_count_needs_the_proxies_addresses():
    result = manage("check", **{**GOOD_PRODUCTION, "TRUSTED_PROXY_COUNT": "1"})
    assert result.returncode != 0
    assert "Set TRUSTED_PROXY_NETWORKS" in result.stderr and "Traceback" not in result.stderr


def test_a_malformed_network_stops_the_process_naming_it():
    result = manage("check", **{**GOOD_PRODUCTION, "TRUSTED_PROXY_NETWORKS": "10.0.0.0/8,proxy"})
    assert result.returncode != 0
    assert "TRUSTED_PROXY_NETWORKS has 'proxy'" in result.stderr
    assert "Traceback" not in result.stderr
