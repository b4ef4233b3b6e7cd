// openid-client (an OpenID-certified relying party) against a pool with a domain:
// discovery from the pool's issuer, machine-to-machine tokens with the client_credentials
// grant and a custom scope of a resource server (verified with aws-jwt-verify against
// the pool's JWKS), and a person signing in through the hosted pages in headless
// Chromium: authorization code with PKCE, userinfo, refresh, revoke, RP-initiated logout.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { JwtRsaVerifier } from 'aws-jwt-verify';
import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import {
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  CreateResourceServerCommand,
  CreateUserPoolClientCommand,
  CreateUserPoolDomainCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { startDaemon, PASSWORD } from './lib/daemon.mjs';

let d;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d?.stop();
});

test('openid-client: discovery and client_credentials with a custom scope', async () => {
  const { poolId } = await d.poolAndClient();
  const domain = `m2m-${Date.now().toString(36)}`;
  await d.admin.send(new CreateUserPoolDomainCommand({ UserPoolId: poolId, Domain: domain }));
  await d.admin.send(
    new CreateResourceServerCommand({
      UserPoolId: poolId,
      Identifier: 'https://orders.example.com',
      Name: 'orders',
      Scopes: [
        { ScopeName: 'read', ScopeDescription: 'read orders' },
        { ScopeName: 'write', ScopeDescription: 'write orders' },
      ],
    }),
  );
  const created = await d.admin.send(
    new CreateUserPoolClientCommand({
      UserPoolId: poolId,
      ClientName: 'billing-service',
      GenerateSecret: true,
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthFlows: ['client_credentials'],
      AllowedOAuthScopes: ['https://orders.example.com/read', 'https://orders.example.com/write'],
    }),
  );
  const { ClientId: clientId, ClientSecret: clientSecret } = created.UserPoolClient;

  const issuer = `${d.endpoint}/${poolId}`;
  // Plain http is fine on loopback; openid-client wants to be told.
  const config = await oidc.discovery(new URL(issuer), clientId, clientSecret, undefined, {
    execute: [oidc.allowInsecureRequests],
  });
  const meta = config.serverMetadata();
  assert.equal(meta.issuer, issuer);
  assert.equal(meta.token_endpoint, `${d.endpoint}/domains/${domain}/oauth2/token`);

  const tokens = await oidc.clientCredentialsGrant(config, { scope: 'https://orders.example.com/read' });
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  assert.ok(tokens.expires_in > 0);
  const verifier = JwtRsaVerifier.create({
    issuer,
    audience: null,
    jwksUri: `${issuer}/.well-known/jwks.json`,
    customJwtCheck: ({ payload }) => {
      if (payload.token_use !== 'access') throw new Error('not an access token');
    },
  });
  // aws-jwt-verify fetches over https only: hand it the JWKS (plain http on loopback).
  verifier.cacheJwks(await (await fetch(`${issuer}/.well-known/jwks.json`)).json());
  const claims = await verifier.verify(tokens.access_token);
  assert.equal(claims.sub, clientId);
  assert.equal(claims.client_id, clientId);
  assert.equal(claims.scope, 'https://orders.example.com/read');

  // A scope the client may not have is refused with OAuth's error.
  await assert.rejects(
    oidc.clientCredentialsGrant(config, { scope: 'https://orders.example.com/admin' }),
    (e) => e.error === 'invalid_scope',
  );
  // A wrong secret is refused.
  const wrong = await oidc.discovery(new URL(issuer), clientId, 'not-the-secret', undefined, {
    execute: [oidc.allowInsecureRequests],
  });
  await assert.rejects(oidc.clientCredentialsGrant(wrong, {}), (e) => e.error === 'invalid_client');
});

const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';

test(
  'openid-client: authorization code with PKCE through the hosted pages in Chromium, userinfo, refresh, revoke, logout',
  { skip: !existsSync(browserPath) && `no browser at ${browserPath}` },
  async () => {
    const { poolId } = await d.poolAndClient({
      Schema: [{ Name: 'email', AttributeDataType: 'String', Required: true, Mutable: true }],
    });
    const domain = `web-${Date.now().toString(36)}`;
    await d.admin.send(new CreateUserPoolDomainCommand({ UserPoolId: poolId, Domain: domain }));
    await d.admin.send(
      new AdminCreateUserCommand({
        UserPoolId: poolId,
        Username: 'olga',
        MessageAction: 'SUPPRESS',
        UserAttributes: [
          { Name: 'email', Value: 'olga@example.com' },
          { Name: 'email_verified', Value: 'true' },
        ],
      }),
    );
    await d.admin.send(
      new AdminSetUserPasswordCommand({ UserPoolId: poolId, Username: 'olga', Password: PASSWORD, Permanent: true }),
    );

    // The relying party's own pages: where the provider sends the browser back.
    const app = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><title>app</title><p id="landed">${req.url.split('?')[0]}</p>`);
    });
    await new Promise((ok) => app.listen(0, '127.0.0.1', ok));
    const appUrl = `http://127.0.0.1:${app.address().port}`;
    const created = await d.admin.send(
      new CreateUserPoolClientCommand({
        UserPoolId: poolId,
        ClientName: 'web-app',
        AllowedOAuthFlowsUserPoolClient: true,
        AllowedOAuthFlows: ['code'],
        AllowedOAuthScopes: ['openid', 'email', 'profile', 'aws.cognito.signin.user.admin'],
        CallbackURLs: [`${appUrl}/callback`],
        LogoutURLs: [`${appUrl}/signed-out`],
        SupportedIdentityProviders: ['COGNITO'],
        EnableTokenRevocation: true,
      }),
    );
    const clientId = created.UserPoolClient.ClientId;
    const issuer = `${d.endpoint}/${poolId}`;
    const config = await oidc.discovery(new URL(issuer), clientId, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    const meta = config.serverMetadata();
    assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
    assert.equal(meta.end_session_endpoint, `${d.endpoint}/domains/${domain}/logout`);

    const browser = await chromium.launch({
      executablePath: browserPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage();
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: `${appUrl}/callback`,
        scope: 'openid email aws.cognito.signin.user.admin',
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      await page.goto(url.href);
      // The sign-in page, by its labels, as a person (or a screen reader) finds it.
      await page.getByLabel('Username').fill('olga');
      await page.getByLabel('Password').fill(PASSWORD);
      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(`${appUrl}/callback`)),
        page.getByRole('button', { name: 'Sign in' }).click(),
      ]);
      const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url()), {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      assert.equal(claims.email, 'olga@example.com');
      assert.equal(claims['cognito:username'], 'olga');
      const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
      assert.equal(info.email, 'olga@example.com');
      assert.equal(info.username, 'olga');

      const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
      assert.ok(refreshed.access_token && refreshed.access_token !== tokens.access_token);
      await oidc.tokenRevocation(config, tokens.refresh_token);
      await assert.rejects(oidc.refreshTokenGrant(config, tokens.refresh_token), (e) => e.error === 'invalid_grant');

      // RP-initiated logout, then the provider no longer remembers the sign-in.
      const logout = oidc.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: `${appUrl}/signed-out`,
        state: 'bye',
      });
      await page.goto(logout.href);
      assert.equal(page.url(), `${appUrl}/signed-out?state=bye`);
      const silent = oidc.buildAuthorizationUrl(config, {
        redirect_uri: `${appUrl}/callback`,
        scope: 'openid',
        prompt: 'none',
        state: 's2',
      });
      await page.goto(silent.href);
      const back = new URL(page.url());
      assert.equal(back.searchParams.get('error'), 'login_required');
    } finally {
      await browser.close();
      app.close();
    }
  },
);
