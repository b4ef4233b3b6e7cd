// amazon-cognito-identity-js against a running cognate: sign-up, confirmation with the
// code from the daemon's output, SRP sign-in, refresh, change and forgot password, TOTP
// MFA and a remembered device that skips MFA; tokens verified with aws-jwt-verify
// against the pool's JWKS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Cognito from 'amazon-cognito-identity-js';
import { JwtRsaVerifier } from 'aws-jwt-verify';
import {
  AdminGetDeviceCommand,
  AdminListDevicesCommand,
  SetUserPoolMfaConfigCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { startDaemon, PASSWORD, OTHER_PASSWORD, MemoryStorage, totp, nextStep } from './lib/daemon.mjs';

const { CognitoUserPool, CognitoUser, AuthenticationDetails, CognitoUserAttribute } = Cognito;

let d;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d?.stop();
});

function userPool(poolId, clientId, storage = new MemoryStorage()) {
  return new CognitoUserPool({ UserPoolId: poolId, ClientId: clientId, endpoint: d.endpoint + '/', Storage: storage });
}

const signUp = (pool, username, email) =>
  new Promise((ok, fail) =>
    pool.signUp(username, PASSWORD, [new CognitoUserAttribute({ Name: 'email', Value: email })], null, (err, r) =>
      err ? fail(err) : ok(r),
    ),
  );

const confirm = (user, code) =>
  new Promise((ok, fail) => user.confirmRegistration(code, true, (err, r) => (err ? fail(err) : ok(r))));

/** authenticateUser (SRP); `onTotp` answers SOFTWARE_TOKEN_MFA when asked. */
function signIn(user, password, onTotp) {
  return new Promise((ok, fail) => {
    const callbacks = {
      onSuccess: (session, confirmationNecessary) => ok({ session, confirmationNecessary }),
      onFailure: fail,
      totpRequired: async () => {
        if (!onTotp) return fail(new Error('TOTP was asked for'));
        user.sendMFACode(await onTotp(), callbacks, 'SOFTWARE_TOKEN_MFA');
      },
      mfaRequired: () => fail(new Error('SMS MFA was asked for')),
      newPasswordRequired: () => fail(new Error('new password was asked for')),
    };
    user.authenticateUser(new AuthenticationDetails({ Username: user.getUsername(), Password: password }), callbacks);
  });
}

async function verifier(poolId, clientId, tokenUse) {
  const issuer = `${d.endpoint}/${poolId}`;
  const v = JwtRsaVerifier.create({
    issuer,
    audience: tokenUse === 'id' ? clientId : null,
    jwksUri: `${issuer}/.well-known/jwks.json`,
    customJwtCheck: ({ payload }) => {
      if (payload.token_use !== tokenUse) throw new Error(`token_use ${payload.token_use}`);
      if (tokenUse === 'access' && payload.client_id !== clientId) throw new Error('client_id');
    },
  });
  // aws-jwt-verify fetches JWKS over https only; hand it the pool's JWKS directly.
  v.cacheJwks(await (await fetch(`${issuer}/.well-known/jwks.json`)).json());
  return v;
}

test('sign-up, confirm, SRP sign-in, verified tokens, refresh, change and forgot password', async () => {
  const { poolId, clientId } = await d.poolAndClient();
  const pool = userPool(poolId, clientId);
  const r = await signUp(pool, 'alice', 'alice@example.com');
  assert.equal(r.userConfirmed, false);
  const user = new CognitoUser({ Username: 'alice', Pool: pool, Storage: pool.storage });
  await confirm(user, await d.waitCode(poolId, 'alice', 'SignUp'));

  const { session } = await signIn(user, PASSWORD);
  assert.ok(session.isValid());
  const idClaims = await (await verifier(poolId, clientId, 'id')).verify(session.getIdToken().getJwtToken());
  assert.equal(idClaims['cognito:username'], 'alice');
  assert.equal(idClaims.email, 'alice@example.com');
  const access = await (await verifier(poolId, clientId, 'access')).verify(session.getAccessToken().getJwtToken());
  assert.equal(access.username, 'alice');

  await assert.rejects(signIn(new CognitoUser({ Username: 'alice', Pool: pool }), OTHER_PASSWORD), (e) => {
    assert.equal(e.code, 'NotAuthorizedException');
    return true;
  });

  const refreshed = await new Promise((ok, fail) =>
    user.refreshSession(session.getRefreshToken(), (err, s) => (err ? fail(err) : ok(s))),
  );
  assert.notEqual(refreshed.getAccessToken().getJwtToken(), session.getAccessToken().getJwtToken());

  await new Promise((ok, fail) => user.changePassword(PASSWORD, OTHER_PASSWORD, (err, res) => (err ? fail(err) : ok(res))));
  await signIn(new CognitoUser({ Username: 'alice', Pool: pool }), OTHER_PASSWORD);
  await assert.rejects(signIn(new CognitoUser({ Username: 'alice', Pool: pool }), PASSWORD));

  const forgetful = new CognitoUser({ Username: 'alice', Pool: pool });
  await new Promise((ok, fail) => forgetful.forgotPassword({ onSuccess: ok, onFailure: fail, inputVerificationCode: ok }));
  const code = await d.waitCode(poolId, 'alice', 'ForgotPassword');
  await new Promise((ok, fail) => forgetful.confirmPassword(code, 'N3w-Password!', { onSuccess: ok, onFailure: fail }));
  await signIn(new CognitoUser({ Username: 'alice', Pool: pool }), 'N3w-Password!');
});

test('TOTP MFA, then a remembered device that signs in without it', async () => {
  const { poolId, clientId } = await d.poolAndClient({
    DeviceConfiguration: { ChallengeRequiredOnNewDevice: true, DeviceOnlyRememberedOnUserPrompt: false },
  });
  await d.admin.send(
    new SetUserPoolMfaConfigCommand({
      UserPoolId: poolId,
      MfaConfiguration: 'OPTIONAL',
      SoftwareTokenMfaConfiguration: { Enabled: true },
    }),
  );
  // The enrolment happens on one device (its own storage), the sign-ins on another.
  const pool = userPool(poolId, clientId, new MemoryStorage());
  const storage = new MemoryStorage();
  await signUp(pool, 'bob', 'bob@example.com');
  const user = new CognitoUser({ Username: 'bob', Pool: pool, Storage: new MemoryStorage() });
  await confirm(user, await d.waitCode(poolId, 'bob', 'SignUp'));
  await signIn(user, PASSWORD);

  // Enrol TOTP.
  const secret = await new Promise((ok, fail) =>
    user.associateSoftwareToken({ associateSecretCode: ok, onFailure: fail }),
  );
  let step = await nextStep();
  const code = await totp(secret, step);
  await new Promise((ok, fail) => user.verifySoftwareToken(code, 'phone', { onSuccess: ok, onFailure: fail }));
  await new Promise((ok, fail) =>
    user.setUserMfaPreference(null, { Enabled: true, PreferredMfa: true }, (err, r) => (err ? fail(err) : ok(r))),
  );

  // A sign-in from a new device: TOTP, then the library confirms the device it was given.
  let asked = 0;
  const fresh = new CognitoUser({ Username: 'bob', Pool: pool, Storage: storage });
  await signIn(fresh, PASSWORD, async () => {
    asked += 1;
    step = await nextStep(step);
    return totp(secret, step);
  });
  assert.equal(asked, 1);
  const devices = await d.admin.send(new AdminListDevicesCommand({ UserPoolId: poolId, Username: 'bob' }));
  // The enrolment device was remembered too (before TOTP was on); find the new one.
  assert.equal(devices.Devices.length, 2);
  const deviceKey = storage.getItem(`CognitoIdentityServiceProvider.${clientId}.bob.deviceKey`);
  const dev = devices.Devices.find((x) => x.DeviceKey === deviceKey);
  assert.ok(dev, `device ${deviceKey} is listed`);
  const status = dev.DeviceAttributes.find((a) => a.Name === 'dev:device_remembered_status');
  assert.equal(status.Value, 'remembered');

  // The same device again: DEVICE_SRP_AUTH, no TOTP.
  const again = new CognitoUser({ Username: 'bob', Pool: pool, Storage: storage });
  const { session } = await signIn(again, PASSWORD);
  assert.ok(session.isValid());
  const got = await d.admin.send(new AdminGetDeviceCommand({ UserPoolId: poolId, Username: 'bob', DeviceKey: deviceKey }));
  assert.equal(got.Device.DeviceKey, deviceKey);

  // Forgotten, the device is new again and TOTP is back.
  await new Promise((ok, fail) => again.forgetDevice({ onSuccess: ok, onFailure: fail }));
  let askedAfter = 0;
  await signIn(new CognitoUser({ Username: 'bob', Pool: pool, Storage: new MemoryStorage() }), PASSWORD, async () => {
    askedAfter += 1;
    step = await nextStep(step);
    return totp(secret, step);
  });
  assert.equal(askedAfter, 1);

  // A mistyped code, then the right one: identity-js answers again with the Session it
  // holds, and a Session takes up to three wrong codes before it is spent.
  const near = await Promise.all([-2, -1, 0, 1, 2, 3].map((k) => totp(secret, step + k)));
  let wrong = '123456';
  for (let i = 1; near.includes(wrong); i += 1) wrong = String((123456 + i * 7919) % 1_000_000).padStart(6, '0');
  const retry = new CognitoUser({ Username: 'bob', Pool: pool, Storage: new MemoryStorage() });
  let mismatches = 0;
  const tokens = await new Promise((ok, fail) => {
    const callbacks = {
      onSuccess: ok,
      onFailure: async (err) => {
        if (mismatches > 0 || err.code !== 'CodeMismatchException') return fail(err);
        mismatches += 1;
        step = await nextStep(step);
        retry.sendMFACode(await totp(secret, step), callbacks, 'SOFTWARE_TOKEN_MFA');
      },
      totpRequired: () => retry.sendMFACode(wrong, callbacks, 'SOFTWARE_TOKEN_MFA'),
      mfaRequired: () => fail(new Error('SMS MFA was asked for')),
      newPasswordRequired: () => fail(new Error('new password was asked for')),
    };
    retry.authenticateUser(new AuthenticationDetails({ Username: 'bob', Password: PASSWORD }), callbacks);
  });
  assert.equal(mismatches, 1);
  assert.ok(tokens.isValid());
});
