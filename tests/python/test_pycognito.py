"""pycognito's SRP sign-in (AWSSRP and Cognito.authenticate) against a running cognate.

The daemon is $COGNATE_BIN, else target/debug/cognate of this checkout; it runs in a
temporary directory with its own admin credentials and master key.
"""

import os
import pathlib
import secrets
import subprocess
import tempfile

import boto3
import pytest
from pycognito import Cognito
from pycognito.aws_srp import AWSSRP

PASSWORD = "Corr3ct-Horse!"
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def daemon():
    binary = os.environ.get("COGNATE_BIN") or str(ROOT / "target" / "debug" / "cognate")
    if not os.path.exists(binary):
        pytest.fail(f"cognate binary not found at {binary}: cargo build --bin cognate")
    tmp = tempfile.TemporaryDirectory(prefix="cognate-py-")
    key_id = "AKIA" + secrets.token_hex(8).upper()
    secret = secrets.token_hex(20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COGNATE_")}
    env.update(
        COGNATE_ADMIN_ACCESS_KEY_ID=key_id,
        COGNATE_ADMIN_SECRET_ACCESS_KEY=secret,
        COGNATE_MASTER_KEY=secrets.token_hex(32),
        COGNATE_ARGON2_M_KIB="64",
        COGNATE_ARGON2_T="1",
        COGNATE_ARGON2_P="1",
        RUST_LOG="warn",
    )
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp.name, "data")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    endpoint = None
    for line in proc.stdout:
        if line.startswith("cognate listening on "):
            endpoint = line[len("cognate listening on ") :].strip().rstrip("/")
            break
    assert endpoint, "daemon did not start"
    admin = boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    public = boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="unused",
        aws_secret_access_key="unused",
    )
    yield endpoint, admin, public
    proc.terminate()
    proc.wait(timeout=20)
    tmp.cleanup()


def make_user(admin, username, secret=False):
    pool = admin.create_user_pool(PoolName="py-" + secrets.token_hex(4))["UserPool"]["Id"]
    client = admin.create_user_pool_client(
        UserPoolId=pool,
        ClientName="py",
        GenerateSecret=secret,
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    admin.admin_create_user(UserPoolId=pool, Username=username, MessageAction="SUPPRESS")
    admin.admin_set_user_password(UserPoolId=pool, Username=username, Password=PASSWORD, Permanent=True)
    return pool, client["ClientId"], client.get("ClientSecret")


def test_awssrp_signs_in_and_a_wrong_password_is_refused(daemon):
    _, admin, public = daemon
    pool, client_id, _ = make_user(admin, "pyuser")
    srp = AWSSRP(username="pyuser", password=PASSWORD, pool_id=pool, client_id=client_id, client=public)
    tokens = srp.authenticate_user()
    result = tokens["AuthenticationResult"]
    assert result["TokenType"] == "Bearer"
    me = public.get_user(AccessToken=result["AccessToken"])
    assert me["Username"] == "pyuser"

    wrong = AWSSRP(username="pyuser", password="Wr0ng-pass!", pool_id=pool, client_id=client_id, client=public)
    with pytest.raises(public.exceptions.NotAuthorizedException):
        wrong.authenticate_user()


def test_cognito_authenticate_with_a_client_secret(daemon):
    endpoint, admin, _ = daemon
    pool, client_id, client_secret = make_user(admin, "secretuser", secret=True)
    u = Cognito(
        pool,
        client_id,
        user_pool_region="us-east-1",
        username="secretuser",
        client_secret=client_secret,
        access_key="unused",
        secret_key="unused",
        boto3_client_kwargs={"endpoint_url": endpoint},
    )
    # Tokens are verified against <pool_domain_url>/<pool id>: the daemon's issuer and JWKS.
    u.pool_domain_url = endpoint
    u.authenticate(password=PASSWORD)
    assert u.access_token and u.id_token and u.refresh_token
    assert u.get_user().username == "secretuser"
