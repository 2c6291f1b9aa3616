"""A real SMTP server for awxguard's alert tests (aiosmtpd), on a loopback port.

STARTTLS is required before MAIL (require_starttls) with the certificate the test made, or the
connection is TLS from the first byte (--implicit-tls). Each accepted message is written to
--dir as NNNN.eml (atomically). --mode stall never answers DATA (it writes .stalled when DATA
arrives): the message is not accepted, for the crash tests. Prints "READY <port>" when listening.
"""

import argparse
import asyncio
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, directory, mode):
        self.directory = directory
        self.mode = mode
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        if self.mode == "stall":
            open(os.path.join(self.directory, ".stalled"), "w").close()
            await asyncio.sleep(3600)
            return "451 4.3.0 stalled"
        self.count += 1
        name = "%04d-%d.eml" % (self.count, os.getpid())
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 2.0.0 OK queued as %s" % name


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--mode", choices=["accept", "stall"], default="accept")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    handler = Handler(a.dir, a.mode)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        return AuthResult(success=ok)

    def factory():
        kw = dict(hostname="localhost", ident="awxguard-test-smtp")
        if a.user:
            # With implicit TLS aiosmtpd does not see the socket as TLS: the whole session is.
            kw.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=not a.implicit_tls)
        if a.implicit_tls:
            return SMTP(handler, **kw)
        return SMTP(handler, require_starttls=True, tls_context=ctx, **kw)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, host=a.host, port=a.port, ssl=ctx if a.implicit_tls else None
        )
        port = server.sockets[0].getsockname()[1]
        print("READY %d" % port, flush=True)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
