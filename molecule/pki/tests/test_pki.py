"""pki: certificates verify against the CA, carry the host's names, keys stay private."""

import ipaddress
import os
import re
import sys

import pytest

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(SCENARIO)), "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)

PKI = "/etc/hardened-stack/pki"


@pytest.fixture(name="me")
def fixture_me(host):
    return host.backend.get_hostname()


def openssl(host, cmd):
    res = host.run(f"openssl {cmd}")
    assert res.rc == 0, res.stderr
    return res.stdout


def test_host_certificate_chain_verifies(host, me):
    out = openssl(host, f"verify -CAfile {PKI}/ca.crt {PKI}/{me}.crt")
    assert out.strip().endswith(": OK")


def test_ca_is_in_the_system_trust_store(host, me):
    # No -CAfile: the system store must know the lab CA.
    out = openssl(host, f"verify {PKI}/{me}.crt")
    assert out.strip().endswith(": OK")


def test_sans_carry_names_and_addresses(host, me):
    text = openssl(host, f"x509 -in {PKI}/{me}.crt -noout -ext subjectAltName")
    # The cluster address (what peers dial and verify) is in every certificate.
    name = host.ansible.get_variables()["inventory_hostname"]
    address = verifier.cluster_address(name, SCENARIO)
    assert f"DNS:{me}" in text
    assert f"IP Address:{address}" in text
    # So is what Ansible connects to: the management name (an IP literal would be an IP SAN).
    target = host.ansible.get_variables()["ansible_host"]
    try:
        ipaddress.ip_address(target)
        assert f"IP Address:{target}" in text
    except ValueError:
        assert f"DNS:{target}" in text
    assert "DNS:service.lab.test" in text
    assert "IP Address:127.0.0.1" in text


def test_key_is_private_ecdsa_p256_and_matches(host, me):
    key = host.file(f"{PKI}/{me}.key")
    assert key.mode == 0o600
    assert key.user == "root"
    text = openssl(host, f"pkey -in {PKI}/{me}.key -noout -text")
    assert "prime256v1" in text or "P-256" in text
    pub_key = openssl(host, f"pkey -in {PKI}/{me}.key -pubout")
    pub_crt = openssl(host, f"x509 -in {PKI}/{me}.crt -noout -pubkey")
    assert pub_key == pub_crt


def test_certificate_is_for_servers_and_clients(host, me):
    text = openssl(host, f"x509 -in {PKI}/{me}.crt -noout -ext extendedKeyUsage,basicConstraints")
    assert "TLS Web Server Authentication" in text
    assert "TLS Web Client Authentication" in text
    assert "CA:FALSE" in text


def test_tls_handshake_with_hostname_verification(host, me):
    """A real TLS server on the host with its certificate; a client verifies chain and name."""
    server = (f"openssl s_server -accept 127.0.0.1:8443 -cert {PKI}/{me}.crt -key {PKI}/{me}.key "
              "-www -naccept 1 >/dev/null 2>&1 &")
    host.run(f"bash -c '{server}'; sleep 1")
    res = host.run(f"echo | openssl s_client -connect 127.0.0.1:8443 -verify_hostname {me} "
                   f"-verify_return_error -CAfile {PKI}/ca.crt 2>&1")
    assert res.rc == 0, res.stdout
    assert "Verify return code: 0 (ok)" in res.stdout


def test_wrong_hostname_is_refused(host, me):
    server = (f"openssl s_server -accept 127.0.0.1:8444 -cert {PKI}/{me}.crt -key {PKI}/{me}.key "
              "-www -naccept 1 >/dev/null 2>&1 &")
    host.run(f"bash -c '{server}'; sleep 1")
    res = host.run("echo | openssl s_client -connect 127.0.0.1:8444 -verify_hostname not-this-host "
                   f"-verify_return_error -CAfile {PKI}/ca.crt 2>&1")
    assert res.rc != 0
    assert re.search(r"hostname mismatch|verify error", res.stdout)


def test_service_certificate_owned_by_service(host):
    key = host.file(f"{PKI}/svc.key")
    assert key.user == "hsvc" and key.mode == 0o600
    assert "DNS:svc.lab.test" in openssl(host, f"x509 -in {PKI}/svc.crt -noout -ext subjectAltName")
    assert openssl(host, f"verify -CAfile {PKI}/ca.crt {PKI}/svc.crt").strip().endswith(": OK")


def test_user_provided_certificate_is_installed_as_given(host):
    assert "www.lab.test" in openssl(host, f"x509 -in {PKI}/webfront.crt -noout -subject")
    assert host.file(f"{PKI}/webfront.key").mode == 0o600
    # Its chain is the user's CA, not the internal one.
    chain = host.file(f"{PKI}/webfront-fullchain.crt").content_string
    assert chain.count("BEGIN CERTIFICATE") == 2
    res = host.run(f"openssl verify -CAfile {PKI}/ca.crt {PKI}/webfront.crt")
    assert res.rc != 0
