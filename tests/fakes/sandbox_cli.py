"""``scripts/develop --sandbox``: the sandbox of :mod:`tests.fakes.sandbox` until Ctrl-C.

Like the Supervisor of Home Assistant OS, it starts Home Assistant again
whenever it exits to restart (code 100: serving HTTPS, keeping or undoing a
trial, the restart action), waits until it answers (over HTTPS once it
serves the certificate) and prints the address to open then.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import shutil
import signal
import sys
from types import FrameType

from tests.fakes.pebble import _port_open
from tests.fakes.sandbox import (
    DEFAULT_BASE_PORT,
    DEFAULT_HASS_PORT,
    FQDN,
    HOST,
    REPO,
    Sandbox,
)


def https_help(sandbox: Sandbox) -> str:
    """How to open Home Assistant once it serves the certificate for the name."""
    return f"""\
Once Home Assistant serves the certificate (Configure -> Serve the certificate
from Home Assistant), it restarts; the sandbox starts it again and it answers
at {sandbox.https_url}. {FQDN} resolves to nothing here and
the certificate comes from this run's Pebble CA, so open it with a browser that
maps the name to {HOST} and trusts that CA, for example:

  {sandbox.browser_command()}

or add "{HOST} {FQDN}" to your hosts file and import
{sandbox.root_path} into your browser's certificate authorities
(or accept the browser's warning). The address is new to the browser: log in
again, then confirm Home Assistant's "Confirm new HTTP server configuration"."""


def banner(sandbox: Sandbox) -> str:
    """What the user enters, and where things are."""
    values = sandbox.values()
    note = f"\nNote: {sandbox.http_note}.\n" if sandbox.http_note else ""
    return f"""
Secure Remote Access sandbox: everything runs on {HOST}, nothing leaves this machine.

  Home Assistant    {sandbox.address}   (configuration: {sandbox.config_dir})
  Pebble (ACME)     {values["acme_directory_url"]}
  challtestsrv DNS  {values["dns_server"]}
  DuckDNS stand-in  {values["duckdns_url"]}
  UPnP gateway      {values["upnp_location"]}
{note}
1. Open {sandbox.url}, create your user, finish onboarding.
2. Settings -> Devices & services -> Add integration -> Secure Remote Access:
     DuckDNS names ............ {values["domain"]}
     Token .................... {values["token"]}
     For testing -> DuckDNS update URL  {values["duckdns_url"]}
     For testing -> UPnP gateway description URL  {values["upnp_location"]}
   Then "Obtain a certificate":
     Certificate authority .... Another ACME CA
     Directory URL of the other CA  {values["acme_directory_url"]}
     Certificate profile ...... {values["profile"]}
     Certificate file ......... {values["certificate_path"]}
     Private key file ......... {values["private_key_path"]}
     CA bundle of the ACME server  {values["acme_ca_bundle"]}
     For testing -> DNS server for propagation checks  {values["dns_server"]}
   Accept the terms: the first certificate is issued within a minute
   (or at once with the action secure_remote_access.renew_certificate).

The gateway forwards port {sandbox.hass_port} to Home Assistant, which serves plain
HTTP: the entry's Remote access sensor says reachable and Repairs shows
"Home Assistant's plain-HTTP port is open to the internet" until you serve
the certificate.
Its fix offers "Remove this forward": the gateway deletes it (see its list in
the sensor's attributes). "Configure -> Forward HTTPS from the internet
(router)" says what it needs first: this sandbox bans no login attempts
(login_attempts_threshold -1), so it marks that as missing.

{https_help(sandbox)}

Home Assistant's log: {sandbox.log_path}
Press Ctrl-C to stop everything.
"""


def restarted(sandbox: Sandbox) -> str:
    """What to open after a restart."""
    if sandbox.serves_https():
        return (
            f"\nHome Assistant restarted and serves HTTPS: open {sandbox.https_url}\n"
            f"  {sandbox.browser_command()}\n"
        )
    return f"\nHome Assistant restarted and serves plain HTTP: open {sandbox.url}\n"


class _StopRequestedError(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequestedError


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox until Ctrl-C (or until Home Assistant ends for good)."""
    parser = argparse.ArgumentParser(
        prog="scripts/develop --sandbox",
        description="The offline sandbox on 127.0.0.1: Pebble, challtestsrv, a"
        " DuckDNS stand-in, a UPnP gateway and Home Assistant with the integration"
        " from this working tree. It prints what to enter, starts Home Assistant"
        " again when it restarts, and prints where to open it; Ctrl-C stops it.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO / ".sandbox" / "config",
        metavar="DIR",
        help="Home Assistant's configuration directory (default: .sandbox/config,"
        " emptied at start unless --keep)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_HASS_PORT,
        help=f"Home Assistant's port (default: {DEFAULT_HASS_PORT}; with --keep,"
        " the port of HTTP settings Home Assistant wrote wins)",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        help="Pebble, challtestsrv, DuckDNS and the UPnP gateway use this port"
        f" and the next five (default: {DEFAULT_BASE_PORT})",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep Home Assistant's state from the last run, its HTTP settings"
        " (and a change waiting to be tried) included. Pebble starts empty every"
        " time: its CA, accounts and certificates are new (renew the certificate"
        " before trusting the new CA)",
    )
    args = parser.parse_args(argv)
    config_dir: Path = args.config.resolve()
    if not args.keep and config_dir.exists():
        shutil.rmtree(config_dir)
    for port in (args.port, *range(args.base_port, args.base_port + 6)):
        if _port_open(port):
            print(f"port {port} is in use: pick others with --port/--base-port")
            return 1
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    sandbox = Sandbox(config_dir, hass_port=args.port, base_port=args.base_port)
    try:
        sandbox.start_services()
        print(f"Starting Home Assistant on port {sandbox.hass_port}...", flush=True)
        sandbox.start_hass()
        print(banner(sandbox), flush=True)
        code = sandbox.run_hass(
            on_restart=lambda: print(restarted(sandbox), flush=True)
        )
    except _StopRequestedError:
        print(
            "\nStopping Home Assistant, Pebble, challtestsrv, DuckDNS"
            " and the UPnP gateway..."
        )
        return 0
    except RuntimeError as err:
        print(err)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sandbox.stop()
        print("Sandbox stopped.")
    print(f"Home Assistant exited with {code}; see {sandbox.log_path}")
    return code or 1


if __name__ == "__main__":
    sys.exit(main())
