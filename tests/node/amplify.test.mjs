// aws-amplify v6 Auth against a running cognate, configured with an endpoint override:
// sign-up, confirmation (code from the daemon's output), SRP sign-in, fetchAuthSession
// (tokens verified with aws-jwt-verify), GetTokensFromRefreshToken-based refresh and a
// sign-out that revokes the refresh token (the access token carries origin_jti).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Amplify } from 'aws-amplify';
import { signUp, confirmSignUp, signIn, fetchAuthSession, signOut, getCurrentUser } from 'aws-amplify/auth';
import { JwtRsaVerifier } from 'aws-jwt-verify';
import { InitiateAuthCommand, CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { startDaemon, PASSWORD } from './lib/daemon.mjs';

let d;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d?.stop();
});

test('Amplify: sign-up, confirm, sign-in, fetch session, sign-out', async () => {
  const { poolId, clientId } = await d.poolAndClient();
  Amplify.configure({
    Auth: {
      Cognito: { userPoolId: poolId, userPoolClientId: clientId, userPoolEndpoint: d.endpoint },
    },
  });

  const up = await signUp({
    username: 'carol',
    password: PASSWORD,
    options: { userAttributes: { email: 'carol@example.com' } },
  });
  assert.equal(up.isSignUpComplete, false);
  assert.equal(up.nextStep.signUpStep, 'CONFIRM_SIGN_UP');
  const confirmed = await confirmSignUp({
    username: 'carol',
    confirmationCode: await d.waitCode(poolId, 'carol', 'SignUp'),
  });
  assert.equal(confirmed.isSignUpComplete, true);

  const signedIn = await signIn({ username: 'carol', password: PASSWORD });
  assert.equal(signedIn.isSignedIn, true, JSON.stringify(signedIn.nextStep));
  const current = await getCurrentUser();
  assert.equal(current.username, 'carol');

  const { tokens } = await fetchAuthSession();
  assert.ok(tokens?.accessToken && tokens?.idToken);
  const issuer = `${d.endpoint}/${poolId}`;
  const verifier = JwtRsaVerifier.create({ issuer, audience: clientId, jwksUri: `${issuer}/.well-known/jwks.json` });
  verifier.cacheJwks(await (await fetch(`${issuer}/.well-known/jwks.json`)).json());
  const id = await verifier.verify(tokens.idToken.toString());
  assert.equal(id['cognito:username'], 'carol');
  assert.ok(tokens.accessToken.payload.origin_jti, 'access token has origin_jti');

  const refreshed = await fetchAuthSession({ forceRefresh: true });
  assert.notEqual(refreshed.tokens.accessToken.toString(), tokens.accessToken.toString());

  await signOut();
  await assert.rejects(getCurrentUser());
  const after = await fetchAuthSession();
  assert.equal(after.tokens, undefined);

  // Signing in again works after sign-out.
  const again = await signIn({ username: 'carol', password: PASSWORD });
  assert.equal(again.isSignedIn, true);
  await signOut();
});

test('a refresh token revoked by sign-out is refused', async () => {
  const { poolId, clientId } = await d.poolAndClient({}, { ExplicitAuthFlows: ['ALLOW_USER_SRP_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH', 'ALLOW_USER_PASSWORD_AUTH'] });
  Amplify.configure({
    Auth: { Cognito: { userPoolId: poolId, userPoolClientId: clientId, userPoolEndpoint: d.endpoint } },
  });
  await signUp({ username: 'dave', password: PASSWORD, options: { userAttributes: { email: 'dave@example.com' } } });
  await confirmSignUp({ username: 'dave', confirmationCode: await d.waitCode(poolId, 'dave', 'SignUp') });
  await signIn({ username: 'dave', password: PASSWORD });
  const anon = new CognitoIdentityProviderClient({ endpoint: d.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const { defaultStorage } = await import('aws-amplify/utils');
  const refreshKey = `CognitoIdentityServiceProvider.${clientId}.dave.refreshToken`;
  const refreshToken = await defaultStorage.getItem(refreshKey);
  assert.ok(refreshToken, 'Amplify keeps the refresh token');
  await signOut();
  await assert.rejects(
    anon.send(new InitiateAuthCommand({ AuthFlow: 'REFRESH_TOKEN_AUTH', ClientId: clientId, AuthParameters: { REFRESH_TOKEN: refreshToken } })),
    (e) => e.name === 'NotAuthorizedException',
  );
});
