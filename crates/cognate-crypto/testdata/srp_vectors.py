#!/usr/bin/env python3
"""Known-answer vectors for cognate's SRP-6a (crates/cognate-crypto/src/srp.rs).

Computed independently of the Rust code, with plain Python integers and the formulas of
amazon-cognito-identity-js's AuthenticationHelper (and pycognito's aws_srp.py):
N is the 3072-bit group of RFC 5054, g = 2, k = H(PAD(N) | PAD(g)),
x = H(PAD(salt) | H(poolName | userId | ":" | password)), v = g^x, A = g^a,
B = k*v + g^b, u = H(PAD(A) | PAD(B)), S = (B - k*g^x)^(a + u*x) = (A * v^u)^b,
key = HKDF-SHA256(ikm = PAD(S), salt = PAD(u), info = "Caldera Derived Key")[:16],
signature = base64(HMAC-SHA256(key, poolName | userId | secretBlock | timestamp)).
PAD(x) is the big-endian magnitude with a 0x00 byte in front when its top bit is set.

Run: python3 srp_vectors.py > srp_vectors.json
"""
import base64
import hashlib
import hmac
import json

N_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"
)
N = int(N_HEX, 16)
g = 2


def pad_hex(n: int) -> str:
    h = format(n, "x")
    if len(h) % 2 == 1:
        h = "0" + h
    elif h[0] in "89abcdef":
        h = "00" + h
    return h


def hex_hash(hex_str: str) -> str:
    return hashlib.sha256(bytes.fromhex(hex_str)).hexdigest()


def hkdf(ikm: bytes, salt: bytes) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, b"Caldera Derived Key\x01", hashlib.sha256).digest()[:16]


k = int(hex_hash(pad_hex(N) + pad_hex(g)), 16)


def vector(name, pool_name, user_id, password, salt_hex, a, b, secret_block, timestamp):
    salt = int(salt_hex, 16)
    up = hashlib.sha256(f"{pool_name}{user_id}:{password}".encode()).hexdigest()
    x = int(hex_hash(pad_hex(salt) + up), 16)
    v = pow(g, x, N)
    A = pow(g, a, N)
    B = (k * v + pow(g, b, N)) % N
    u = int(hex_hash(pad_hex(A) + pad_hex(B)), 16)
    s_client = pow((B - k * pow(g, x, N)) % N, a + u * x, N)
    s_server = pow(A * pow(v, u, N) % N, b, N)
    assert s_client == s_server
    key = hkdf(bytes.fromhex(pad_hex(s_client)), bytes.fromhex(pad_hex(u)))
    block = base64.b64decode(secret_block)
    msg = pool_name.encode() + user_id.encode() + block + timestamp.encode()
    sig = base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
    return {
        "name": name,
        "pool_name": pool_name,
        "user_id": user_id,
        "password": password,
        "salt": salt_hex,
        "a": format(a, "x"),
        "b": format(b, "x"),
        "x": format(x, "x"),
        "verifier": format(v, "x"),
        "A": format(A, "x"),
        "B": format(B, "x"),
        "u": format(u, "x"),
        "S": format(s_client, "x"),
        "key": key.hex(),
        "secret_block": secret_block,
        "timestamp": timestamp,
        "signature": sig,
    }


vectors = {
    "k": format(k, "x"),
    "vectors": [
        vector(
            "plain",
            "AbCdEfGhI",
            "alice",
            "Passw0rd!",
            "3f2a9c1d5e7b8a6f0c4d2e1f9a8b7c6d",
            int("7" * 64, 16),
            int("1b" * 32, 16),
            base64.b64encode(b"secret block of the server").decode(),
            "Thu Nov 6 09:05:03 UTC 2025",
        ),
        vector(
            "high bits and unicode",
            "zZ9yY8xX7",
            "b\u00f6b@example.com",
            "p\u00e4ss w\u00f6rd \u2603",
            "f00dfeedcafebabe0123456789abcdef",
            int("f" * 64, 16) - 12345,
            int("9c" * 32, 16),
            base64.b64encode(bytes(range(200))).decode(),
            "Sun Jan 12 23:59:59 UTC 2031",
        ),
        vector(
            "device",
            "-3kd9fjL2a",
            "us-east-1_0d4bd5ee-6b7e-4c2e-9a4b-0e2f1a3b4c5d",
            "Zm9vYmFyYmF6cXV4cXV1eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eA==",
            "0a11",
            3,
            5,
            "AAECAw==",
            "Mon Feb 3 00:00:00 UTC 2025",
        ),
    ],
}
print(json.dumps(vectors, indent=2, ensure_ascii=False))
