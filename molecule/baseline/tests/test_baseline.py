"""baseline: behaviour of a hardened host (sshd, sysctls, limits, logging, packages)."""

import pytest

SSH_OPTS = "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5"


def ssh_rc(host, command):
    """Run a nested ssh; its exit status is printed, since testinfra treats 255 as its own failure."""
    res = host.run(f"{command}; echo \"rc=$?\"")
    return int(res.stdout.rsplit("rc=", 1)[1]), res.stdout.rsplit("rc=", 1)[0], res.stderr


@pytest.fixture(name="sshd")
def fixture_sshd(host):
    out = host.check_output("/usr/sbin/sshd -T")
    conf = {}
    for line in out.splitlines():
        key, value = (line.split(" ", 1) + [""])[:2]
        conf.setdefault(key, value)
    return conf


def test_sshd_effective_values(sshd):
    assert sshd["permitrootlogin"] == "no"
    assert sshd["passwordauthentication"] == "no"
    assert sshd["kbdinteractiveauthentication"] == "no"
    assert sshd["permitemptypasswords"] == "no"
    assert sshd["x11forwarding"] == "no"
    assert sshd["allowtcpforwarding"] == "no"
    assert sshd["allowagentforwarding"] == "no"
    assert sshd["maxauthtries"] == "3"
    assert sshd["authenticationmethods"] == "publickey"
    assert all(c.endswith(("gcm@openssh.com", "poly1305@openssh.com", "-ctr")) for c in sshd["ciphers"].split(","))
    assert all(m.endswith("-etm@openssh.com") for m in sshd["macs"].split(","))
    assert not any("sha1" in k for k in sshd["kexalgorithms"].split(","))


def test_password_login_is_refused(host):
    command = (f"ssh {SSH_OPTS} -o PreferredAuthentications=password,keyboard-interactive "
               "-o PubkeyAuthentication=no hslab@127.0.0.1 true")
    rc, err = ssh_rc(host, command)[0::2]
    assert rc == 255
    assert "Permission denied (publickey)" in err


def test_root_login_is_refused_even_with_a_valid_key(host):
    """The same key logs in as the lab user but not as root."""
    host.run_expect([0], "rm -f /root/hs-test-key /root/hs-test-key.pub && "
                         "ssh-keygen -q -t ed25519 -N '' -f /root/hs-test-key")
    pub = host.file("/root/hs-test-key.pub").content_string.strip()
    host.run_expect([0], f"install -d -m 0700 /root/.ssh && echo '{pub}' >> /root/.ssh/authorized_keys && "
                         f"echo '{pub}' >> /home/hslab/.ssh/authorized_keys")
    try:
        as_user = ssh_rc(host, f"ssh {SSH_OPTS} -i /root/hs-test-key hslab@127.0.0.1 id -un")
        as_root = ssh_rc(host, f"ssh {SSH_OPTS} -i /root/hs-test-key root@127.0.0.1 id -un")
    finally:
        for path in ("/root/.ssh/authorized_keys", "/home/hslab/.ssh/authorized_keys"):
            host.run(f"grep -vxF '{pub}' {path} > {path}.tmp; cat {path}.tmp > {path}; rm -f {path}.tmp")
    assert as_user[0] == 0 and as_user[1].strip() == "hslab", as_user[2]
    assert as_root[0] == 255
    assert "Permission denied" in as_root[2]


def test_sshd_config_is_private_and_valid(host):
    assert host.file("/etc/ssh/sshd_config").mode == 0o600
    assert host.run("/usr/sbin/sshd -t").rc == 0


@pytest.mark.parametrize("key, value", [
    ("net.ipv4.conf.all.rp_filter", "1"),
    ("net.ipv4.conf.all.accept_redirects", "0"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.all.accept_source_route", "0"),
    ("net.ipv4.conf.all.log_martians", "1"),
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.ip_forward", "0"),
    ("net.ipv6.conf.all.accept_ra", "0"),
])
def test_network_sysctls_are_live(host, key, value):
    assert host.check_output(f"sysctl -n {key}").strip() == value


def test_kernel_sysctls_are_persisted_for_boot(host):
    conf = host.file("/etc/sysctl.d/90-hardened-stack.conf").content_string
    for line in ("kernel.kptr_restrict=2", "kernel.yama.ptrace_scope=1", "fs.suid_dumpable=0",
                 "kernel.randomize_va_space=2"):
        assert line in conf.replace(" ", "")


def test_core_dumps_are_off(host):
    assert host.check_output("su -l hslab -s /bin/bash -c 'ulimit -c'").strip() == "0"
    assert host.check_output("systemctl show --property DefaultLimitCORE --value").strip() == "0"
    assert "Storage=none" in host.check_output("systemd-analyze cat-config systemd/coredump.conf")


def test_login_shell_umask(host):
    assert host.check_output("su -l hslab -s /bin/bash -c umask").strip() == "0027"


def test_journal_is_persistent_and_capped(host):
    conf = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert "Storage=persistent" in conf and "SystemMaxUse=500M" in conf
    assert host.run("ls /var/log/journal/*/system.journal").rc == 0


@pytest.mark.parametrize("package", ["telnetd", "rsh-server", "nis", "xinetd", "tftpd-hpa"])
def test_legacy_services_absent(host, package):
    assert not host.package(package).is_installed


def test_sudo_is_logged(host):
    host.run_expect([0], "su -s /bin/sh hslab -c 'sudo -n true'")
    log = host.file("/var/log/sudo.log")
    assert log.exists and "COMMAND=/usr/bin/true" in log.content_string


def test_unattended_security_upgrades(host):
    dump = host.check_output("apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert "label=Debian-Security" in dump
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in dump
    assert host.package("unattended-upgrades").is_installed


def test_cron_restricted(host):
    assert host.file("/etc/cron.allow").content_string == "root\n"
    assert host.file("/etc/cron.d").mode == 0o700
    crontab = host.file("/etc/crontab")
    assert not crontab.exists or crontab.mode == 0o600


def test_password_quality(host):
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string


def test_modules_blocked(host):
    conf = host.file("/etc/modprobe.d/hardened-stack.conf").content_string
    assert "install cramfs /bin/true" in conf and "blacklist usb-storage" in conf


def test_auditd_skipped_in_container_with_reason(host):
    # In a container the kernel audit subsystem is the machine's: the role must not install a
    # failing auditd (the system would be "degraded").
    assert host.check_output("systemd-detect-virt --container").strip() in ("docker", "container-other")
    assert not host.package("auditd").is_installed
    assert host.check_output("systemctl is-system-running || true").strip() == "running"


def test_lockout_is_refused_before_any_change():
    """A configuration that would shut the connecting user out stops the run, sshd untouched."""
    import os
    import subprocess

    scenario = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    res = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], f"{scenario}/converge.yml",
         "-e", '{"baseline_ssh_allow_users": ["someone-else"]}'],
        capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0
    assert "would lock it out" in out and "baseline_ssh_allow_users" in out
    assert "changed=0" in out.split("PLAY RECAP")[1]
