#!/usr/bin/python3
"""
auth jwt against tokens minted by Debian's python3-jwt (PyJWT) with keys
made by python3-cryptography, through Python websockets:

- every algorithm (HS256/384/512, RS256/384/512, PS256, ES256/384, EdDSA)
  authenticates, with the user id from sub, the type from a claim and an
  attribute from a list claim that policy_static's "allow attribute" reads;
- every bad token is InvalidAuthentication with one log line saying why and
  never the token: expired, not yet valid, issued in the future, wrong
  audience or issuer, no exp, wrong key, tampered payload or header,
  alg none, HS256 signed with the RSA public key (alg confusion), an
  algorithm the configuration did not list, oversized, bad base64url, bad
  JSON, huge and non-numeric dates;
- a token that is no JWT goes on to the next auth plugin (auth static);
- a JWKS file picks keys by kid and is reread on SIGHUP (rotation);
- a token that expires while the socket is open ends the session at its
  exp with SessionExpired.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Client, Daemon, Suite, hup_and_wait, prerequisite_missing, require,
                       write_file)

require()
try:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
except ImportError:
    prerequisite_missing("python3-jwt and python3-cryptography (apt-get install python3-jwt)")

T = Suite()
SECRET = "s3cret-" + "x" * 40            # 47 bytes
ISS, AUD = "https://app.example", "myxid"


def pem_public(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
ED = ed25519.Ed25519PrivateKey.generate()
SIGNERS = {"HS256": SECRET, "HS384": SECRET, "HS512": SECRET, "RS256": RSA, "RS384": RSA,
           "RS512": RSA, "PS256": RSA, "ES256": P256, "ES384": P384, "EdDSA": ED}

CONF_TEMPLATE = """\
log_level info
recheck_interval 1s
auth jwt {{
    algorithms {algs}
    {keys}
    issuer {iss}
    audience {aud}
    type_claim role
    attribute deployments
    max_token_size 4k
}}
auth static {{
    tokens_file tokens
}}
exchange deployment {{
    policy static {{
        allow attribute deployments
    }}
}}
exchange private {{
    policy jwt {{
        algorithms HS256
        secret ${{JWT_SECRET}}
    }}
}}
"""
FILES = {"rsa.pem": pem_public(RSA).decode(), "p256.pem": pem_public(P256).decode(),
         "p384.pem": pem_public(P384).decode(), "ed.pem": pem_public(ED).decode(),
         "tokens": "demo-alice  1  deployments=d1\n"}
ALL_KEYS = ("secret ${JWT_SECRET}\n    public_key rsa.pem\n    public_key p256.pem\n"
            "    public_key p384.pem\n    public_key ed.pem")
D = Daemon(CONF_TEMPLATE.format(algs=" ".join(SIGNERS), keys=ALL_KEYS, iss=ISS, aud=AUD),
           files=FILES, env={"JWT_SECRET": SECRET}, name="jwt")


def claims(**kw):
    now = int(time.time())
    c = {"sub": "u1", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 60,
         "deployments": ["d1", "d2"]}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def mint(alg="HS256", key=None, headers=None, **kw):
    return jwt.encode(claims(**kw), SIGNERS[alg] if key is None else key, algorithm=alg,
                      headers=headers)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_raw(header, payload_bytes, secret):
    """A token assembled by hand (for what PyJWT will not make)."""
    signing = b64(json.dumps(header).encode()) + "." + b64(payload_bytes)
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)


async def auth(port, token):
    async with Client(port) as c:
        return json.loads(await c.request("Authenticate", {"session_id": token}, "t"))


REFUSED = {"event": "Error", "tag": "t", "payload": {"error": "InvalidAuthentication"}}


@T.test(timeout=60)
async def every_algorithm():
    for alg in SIGNERS:
        token = mint(alg, sub=f"user-{alg}", role="Admin")
        async with Client(D.port, label=alg) as c:
            got = json.loads(await c.request("Authenticate", {"session_id": token}, "t"))
            T.eq(got, {"event": "Authenticated", "tag": "t",
                       "payload": {"user_id": f"user-{alg}", "user_type": "Admin"}},
                 f"{alg}: Authenticated with sub and the role claim as the type")
            got = json.loads(await c.request("Subscribe", {"exchange": "deployment",
                                                           "routing_key": "d2"}, "s"))
            T.eq(got.get("event"), "Subscribed",
                 f"{alg}: the list claim deployments [d1, d2] is attr:deployments (d2 allowed)")
            got = json.loads(await c.request("Subscribe", {"exchange": "deployment",
                                                           "routing_key": "d3"}, "s"))
            T.eq(got["payload"].get("error"), "SubscriptionDenied", f"{alg}: d3 denied")


@T.test(timeout=60)
async def bad_tokens_are_refused_with_a_reason():
    now = int(time.time())
    hs_header = {"alg": "HS256", "typ": "JWT"}
    good = mint("RS256")
    h, p, s = good.split(".")
    other_payload = b64(json.dumps(claims(sub="admin")).encode())
    cases = [
        ("expired", mint(exp=now - 10), "the token has expired"),
        ("not valid yet", mint(nbf=now + 300), "not valid yet"),
        ("issued in the future", mint(iat=now + 300), "issued in the future"),
        ("wrong audience", mint(aud="someone-else"), "wrong audience"),
        ("wrong issuer", mint(iss="https://evil.example"), "wrong issuer"),
        ("no exp", mint(exp=None), "has no \"exp\""),
        ("HS256 with another secret", mint(key="another-secret-" + "y" * 40),
         "no configured key verifies"),
        ("RS256 with another RSA key", mint("RS256", key=RSA_OTHER), "no configured key verifies"),
        ("ES256 signed by the P-384 key's curve mismatch", mint("ES384", key=P256),
         "no configured key verifies"),
        ("tampered payload", f"{h}.{other_payload}.{s}", "no configured key verifies"),
        ("tampered header (alg RS384)",
         f"{b64(json.dumps({'alg': 'RS384', 'typ': 'JWT'}).encode())}.{p}.{s}",
         "no configured key verifies"),
        ("alg none", jwt.encode(claims(), None, algorithm="none") + "c2ln",
         "not one of algorithms"),
        ("alg none, no signature", jwt.encode(claims(), None, algorithm="none"), None),
        ("HS256 signed with the RSA public key (alg confusion)",
         hs256_raw(hs_header, json.dumps(claims()).encode(), pem_public(RSA)),
         "no configured key verifies"),
        ("bad base64url in the payload", f"{h}.{p[:-2]}$$.{s}", None),
        ("stray bits in base64url", f"{h}.{p[:-1]}{'B' if p[-1] == 'A' else 'A'}.{s}", None),
        ("payload is not JSON", hs256_raw(hs_header, b"{not json", SECRET.encode()),
         "not base64url of a JSON object"),
        ("payload is a JSON list", hs256_raw(hs_header, b"[1,2]", SECRET.encode()),
         "not base64url of a JSON object"),
        ("huge exp", hs256_raw(hs_header, json.dumps(claims(exp=10**400)).encode(),
                               SECRET.encode()), "not a NumericDate"),
        ("exp as a string", mint(exp=str(now + 60)), "not a NumericDate"),
        ("crit header", mint(headers={"crit": ["b64"], "b64": False}), "extensions"),
        ("over max_token_size (4k)", mint(big="z" * 3500), "longer than max_token_size"),
        ("over the daemon's 8 KiB for any token", mint(big="z" * 9000), None),
        ("no user id", mint(sub=None), "no usable user id claim"),
    ]
    for what, token, why in cases:
        got = await auth(D.port, token)
        T.eq(got, REFUSED, f"{what}: InvalidAuthentication")
        if why is not None:
            T.check(f"token refused: " in D.read_log() and why in D.read_log(),
                    f"{what}: the log says why ({why})", D.read_log()[-400:])
    log = D.read_log()
    T.check(all(tok.split(".")[2] not in log for _, tok, _ in cases if tok.count(".") == 2
                and len(tok.split(".")[2]) > 8),
            "no signature (nor token) of any refused token is in the log")


def grant(**kw):
    now = int(time.time())
    c = {"sub": "u1", "exchange": "private", "routing_key": "k1", "exp": now + 60}
    c.update(kw)
    return jwt.encode({k: v for k, v in c.items() if v is not None}, SECRET, algorithm="HS256")


@T.test(timeout=40)
async def subscription_tokens():
    async with Client(D.port, label="u1") as c:
        await c.authenticate(mint("HS256"))

        async def sub(key, token, tag="s"):
            payload = {"exchange": "private", "routing_key": key}
            if token is not None:
                payload["token"] = token
            return json.loads(await c.request("Subscribe", payload, tag))

        def denied(key):
            return {"event": "Error", "tag": "s", "payload": {"error": "SubscriptionDenied",
                                                               "exchange": "private",
                                                               "routing_key": key}}
        T.eq(await sub("k1", None), denied("k1"), "policy jwt: no token, no subscription")
        T.eq((await sub("k1", grant()))["event"], "Subscribed",
             "a token for u1, private, k1 grants it")
        T.eq((await sub("k2", grant(routing_key=None, routing_keys=["k9", "k2"])))["event"],
             "Subscribed", "routing_keys: a list of keys")
        for what, token in [("for another key", grant(routing_key="k9")),
                            ("for another exchange", grant(exchange="deployment")),
                            ("for another user", grant(sub="u2")),
                            ("expired", grant(exp=int(time.time()) - 5)),
                            ("signed with another secret",
                             jwt.encode({"sub": "u1", "exchange": "private", "routing_key": "k3",
                                         "exp": int(time.time()) + 60}, "z" * 40,
                                        algorithm="HS256")),
                            ("not a JWT", "hello")]:
            T.eq(await sub("k3", token), denied("k3"), f"a token {what}: SubscriptionDenied")
        T.eq(await sub("k3", None), denied("k3"),
             "and an allowed answer is never reused for a Subscribe without the token")
        T.check("subscription token for private/k3 refused: it grants another routing key"
                in D.read_log(), "the log says why, for which pair")
    async with Client(D.port, label="u1, short grant") as c:
        await c.authenticate(mint("HS256"))
        raw = await c.request("Subscribe", {"exchange": "private", "routing_key": "k4",
                                            "token": grant(routing_key="k4",
                                                           exp=int(time.time()) + 2)}, "s")
        T.eq(json.loads(raw)["event"], "Subscribed", "a grant valid for 2 s")
        got = json.loads(await c.recv(5))
        T.eq(got, {"event": "Unsubscribed", "tag": None,
                   "payload": {"exchange_name": "private", "routing_key": "k4", "auto": True}},
             "the re-check after its exp (recheck_interval 1s) asks with the same token: "
             "revoked")
    async with Client(D.port, label="anonymous") as c:
        raw = await c.request("Subscribe", {"exchange": "private", "routing_key": "k1",
                                            "token": grant(sub="")}, "s")
        T.eq(json.loads(raw)["event"], "Subscribed", "an anonymous subscriber: sub \"\"")


@T.test(timeout=30)
async def not_a_jwt_goes_to_the_next_plugin():
    got = await auth(D.port, "demo-alice")
    T.eq(got, {"event": "Authenticated", "tag": "t", "payload": {"user_id": "1"}},
         "a token that is no JWT: auth static (next in the chain) knows it")
    got = await auth(D.port, "no-such-token")
    T.eq(got, REFUSED, "nobody knows it: InvalidAuthentication")


@T.test(timeout=30)
async def only_listed_algorithms():
    d = Daemon(CONF_TEMPLATE.format(algs="ES256", keys="public_key p256.pem", iss=ISS, aud=AUD),
               files=FILES, env={"JWT_SECRET": SECRET}, name="jwt-es256-only")
    T.eq((await auth(d.port, mint("ES256")))["event"], "Authenticated", "ES256 is listed")
    T.eq(await auth(d.port, mint("HS256")), REFUSED, "HS256 is not: refused")
    T.check("its algorithm is not one of algorithms" in d.read_log(), "and logged so")
    d.stop()


@T.test(timeout=30)
async def leeway_and_user_claim():
    keys = "secret ${JWT_SECRET}\n    leeway 30s\n    user_claim uid\n    require_exp no"
    d = Daemon(CONF_TEMPLATE.format(algs="HS256", keys=keys, iss=ISS, aud=AUD),
               files=FILES, env={"JWT_SECRET": SECRET}, name="jwt-leeway")
    now = int(time.time())
    got = await auth(d.port, mint(uid="from-uid", exp=now - 10))
    T.eq(got.get("payload"), {"user_id": "from-uid"},
         "leeway 30s: expired 10 s ago still passes; user_claim uid names the user")
    T.eq((await auth(d.port, mint(uid="u", nbf=now + 10)))["event"], "Authenticated",
         "leeway 30s: valid 10 s from now passes")
    T.eq(await auth(d.port, mint(uid="u", exp=now - 40)), REFUSED, "expired 40 s ago does not")
    T.eq((await auth(d.port, mint(uid="u", exp=None)))["event"], "Authenticated",
         "require_exp no: a token without exp passes")
    T.eq(await auth(d.port, mint(uid=None)), REFUSED, "no uid claim: refused")
    d.stop()


@T.test(timeout=30)
async def configuration_errors():
    from myxidtest import PLUGIN_DIR, run_myxid
    cases = [
        ("algorithms none\n    secret ${JWT_SECRET}", "unknown algorithm \"none\""),
        ("algorithms RS256\n    secret ${JWT_SECRET}", "no RSA key is configured"),
        ("algorithms HS256\n    secret short", "HMAC keys need at least 32"),
        ("algorithms ES256\n    public_key rsa.pem\n    public_key nothere.pem", "nothere.pem"),
        ("secret ${JWT_SECRET}", "algorithms is required"),
    ]
    for keys, want in cases:
        d = Daemon(CONF_TEMPLATE.format(algs="", keys=keys, iss=ISS, aud=AUD).replace(
            "    algorithms \n", ""), files=FILES, env={"JWT_SECRET": SECRET},
            name="jwt-bad", start=False)
        rc, out, err = run_myxid(["-t", "-c", d.conf_path, "-P", PLUGIN_DIR],
                                 env={"JWT_SECRET": SECRET})
        T.check(rc != 0 and want in err, f"myxid -t refuses it: {want}", err)


@T.test(timeout=30)
async def jwks_rotation_on_sighup():
    k1, k2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def jwks(key, kid):
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwk.update(kid=kid, use="sig")
        return json.dumps({"keys": [jwk]})
    files = dict(FILES, **{"jwks.json": jwks(k1, "k1")})
    d = Daemon(CONF_TEMPLATE.format(algs="ES256", keys="jwks jwks.json", iss=ISS, aud=AUD),
               files=files, env={"JWT_SECRET": SECRET}, name="jwt-jwks")
    t1 = mint("ES256", key=k1, headers={"kid": "k1"})
    t2 = mint("ES256", key=k2, headers={"kid": "k2"})
    T.eq((await auth(d.port, t1))["event"], "Authenticated", "kid k1 from the JWKS")
    T.eq(await auth(d.port, t2), REFUSED, "kid k2 is not in it yet")
    write_file(d, "jwks.json", jwks(k2, "k2"))
    T.check(await hup_and_wait(d, "configuration reloaded"), "SIGHUP rereads the JWKS")
    T.eq((await auth(d.port, t2))["event"], "Authenticated", "after the rotation k2 works")
    T.eq(await auth(d.port, t1), REFUSED, "and k1 no longer")
    d.stop()


@T.test(timeout=30)
async def expiry_ends_the_session():
    token = mint("HS256", exp=int(time.time()) + 2)
    async with Client(D.port, label="short-lived") as c:
        got = json.loads(await c.request("Authenticate", {"session_id": token}, "t"))
        T.eq(got["event"], "Authenticated", "a token valid for 2 s")
        got = json.loads(await c.request("Subscribe", {"exchange": "deployment",
                                                       "routing_key": "d1"}, "s"))
        T.eq(got["event"], "Subscribed", "subscribed")
        t0 = time.monotonic()
        first = json.loads(await c.recv(5))
        second = json.loads(await c.recv(2))
        T.eq(first, {"event": "Error", "tag": None, "payload": {"error": "SessionExpired"}},
             "at its exp the session ends: Error SessionExpired")
        T.eq(second, {"event": "Unsubscribed", "tag": None,
                      "payload": {"exchange_name": "deployment", "routing_key": "d1",
                                  "auto": True}}, "and its subscription goes")
        T.check(time.monotonic() - t0 < 3.5, "within a second of exp",
                f"{time.monotonic() - t0:.2f} s")


if __name__ == "__main__":
    T.run()
