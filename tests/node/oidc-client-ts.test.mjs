// oidc-client-ts (the OpenID client library of many single-page apps) in headless
// Chromium: a page on another origin signs in with the authorization code flow and PKCE
// through the pool's hosted pages, then reads the user's claims. It fetches discovery,
// the JWKS, the token and userInfo endpoints cross-origin, as a browser app does.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import {
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  CreateUserPoolClientCommand,
  CreateUserPoolDomainCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { startDaemon, PASSWORD } from './lib/daemon.mjs';

const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
// The package exports no path to its browser bundle; read it from node_modules.
const bundle = readFileSync(
  join(dirname(fileURLToPath(import.meta.url)), 'node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js'),
);

let d;
let app;
let appUrl;
before(async () => {
  d = await startDaemon();
  app = createServer((req, res) => {
    if (req.url === '/oidc.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(bundle);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>spa</title><script src="/oidc.js"></script>');
    }
  });
  await new Promise((ok) => app.listen(0, '127.0.0.1', ok));
  appUrl = `http://127.0.0.1:${app.address().port}`;
});
after(async () => {
  app?.close();
  await d?.stop();
});

test('oidc-client-ts: code flow with PKCE through the hosted pages', { skip: !existsSync(browserPath) && `no browser at ${browserPath}` }, async () => {
  const { poolId } = await d.poolAndClient({
    Schema: [{ Name: 'email', AttributeDataType: 'String', Required: true, Mutable: true }],
  });
  const domain = `spa-${Date.now().toString(36)}`;
  await d.admin.send(new CreateUserPoolDomainCommand({ UserPoolId: poolId, Domain: domain }));
  await d.admin.send(
    new AdminCreateUserCommand({
      UserPoolId: poolId,
      Username: 'tess',
      MessageAction: 'SUPPRESS',
      UserAttributes: [{ Name: 'email', Value: 'tess@example.com' }],
    }),
  );
  await d.admin.send(
    new AdminSetUserPasswordCommand({ UserPoolId: poolId, Username: 'tess', Password: PASSWORD, Permanent: true }),
  );
  const created = await d.admin.send(
    new CreateUserPoolClientCommand({
      UserPoolId: poolId,
      ClientName: 'spa',
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthFlows: ['code'],
      AllowedOAuthScopes: ['openid', 'email'],
      CallbackURLs: [`${appUrl}/callback`],
      SupportedIdentityProviders: ['COGNITO'],
    }),
  );
  const settings = {
    authority: `${d.endpoint}/${poolId}`,
    client_id: created.UserPoolClient.ClientId,
    redirect_uri: `${appUrl}/callback`,
    response_type: 'code',
    scope: 'openid email',
    loadUserInfo: true,
  };

  const browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${appUrl}/`);
    // The app starts the sign-in; the browser leaves for the hosted pages.
    await Promise.all([
      page.waitForURL((u) => u.href.includes('/login?')),
      // The navigation ends the page's script context: its promise never settles here.
      page.evaluate((s) => new oidc.UserManager(s).signinRedirect(), settings).catch(() => {}),
    ]);
    const authorize = new URL(page.url());
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    await page.getByLabel('Username').fill('tess');
    await page.getByLabel('Password').fill(PASSWORD);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${appUrl}/callback`)),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    const user = await page.evaluate(async (s) => {
      const u = await new oidc.UserManager(s).signinRedirectCallback();
      return { profile: u.profile, scope: u.scope, access: u.access_token, expired: u.expired };
    }, settings);
    assert.equal(user.profile.email, 'tess@example.com');
    assert.equal(user.profile['cognito:username'], 'tess');
    assert.equal(user.expired, false);
    assert.match(user.scope, /openid/);
    const claims = JSON.parse(Buffer.from(user.access.split('.')[1], 'base64url'));
    assert.equal(claims.scope, 'openid email');
  } finally {
    await browser.close();
  }
});
