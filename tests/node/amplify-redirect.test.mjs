// Amplify v6 signInWithRedirect and signOut in headless Chromium against the daemon over
// https, with a certificate the test makes: the app (on http://localhost) sends the
// browser to the pool's hosted sign-in page, Amplify exchanges the code (PKCE) and holds
// tokens; signOut goes through /logout and leaves none.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import * as esbuild from 'esbuild';
import {
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  CreateUserPoolClientCommand,
  CreateUserPoolDomainCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { startDaemon, PASSWORD } from './lib/daemon.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const skip = (!existsSync(browserPath) && `no browser at ${browserPath}`) || false;

let d;
let app;
let certDir;
let spki;
before(async () => {
  if (skip) return;
  // A certificate for 127.0.0.1, made here; the browser trusts exactly its key.
  certDir = mkdtempSync(join(tmpdir(), 'cognate-tls-'));
  const cert = join(certDir, 'cert.pem');
  const key = join(certDir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  const pem = readFileSync(cert, 'utf8');
  spki = createHash('sha256')
    .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
  d = await startDaemon({ args: ['--tls-cert', cert, '--tls-key', key], ca: pem });
  assert.match(d.endpoint, /^https:\/\//);
});
after(async () => {
  app?.close();
  await d?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

test('Amplify v6 signInWithRedirect and signOut over https through the hosted pages', { skip }, async () => {
  const { poolId } = await d.poolAndClient();
  const domain = `amp-${Date.now().toString(36)}`;
  await d.admin.send(new CreateUserPoolDomainCommand({ UserPoolId: poolId, Domain: domain }));
  await d.admin.send(
    new AdminCreateUserCommand({
      UserPoolId: poolId,
      Username: 'una',
      MessageAction: 'SUPPRESS',
      UserAttributes: [{ Name: 'email', Value: 'una@example.com' }],
    }),
  );
  await d.admin.send(
    new AdminSetUserPasswordCommand({ UserPoolId: poolId, Username: 'una', Password: PASSWORD, Permanent: true }),
  );

  const bundle = await esbuild.build({
    entryPoints: [join(here, 'lib/amplify-redirect-app.mjs')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    minify: true,
    write: false,
    logLevel: 'silent',
  });
  let config = '{}';
  app = createServer((req, res) => {
    if (req.url === '/app.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(bundle.outputFiles[0].contents);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<!doctype html><title>amplify app</title><script>window.amplifyConfig = ${config};</script>` +
          '<script type="module" src="/app.js"></script>',
      );
    }
  });
  await new Promise((ok) => app.listen(0, '127.0.0.1', ok));
  const appUrl = `http://localhost:${app.address().port}/`;
  const created = await d.admin.send(
    new CreateUserPoolClientCommand({
      UserPoolId: poolId,
      ClientName: 'amplify-web',
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthFlows: ['code'],
      AllowedOAuthScopes: ['openid', 'email', 'aws.cognito.signin.user.admin'],
      CallbackURLs: [appUrl],
      LogoutURLs: [appUrl],
      SupportedIdentityProviders: ['COGNITO'],
      EnableTokenRevocation: true,
    }),
  );
  const host = new URL(d.endpoint).host;
  config = JSON.stringify({
    Auth: {
      Cognito: {
        userPoolId: poolId,
        userPoolClientId: created.UserPoolClient.ClientId,
        userPoolEndpoint: d.endpoint,
        loginWith: {
          oauth: {
            // Amplify builds https://<domain>/oauth2/...: a domain with a path works.
            domain: `${host}/domains/${domain}`,
            scopes: ['openid', 'email', 'aws.cognito.signin.user.admin'],
            redirectSignIn: [appUrl],
            redirectSignOut: [appUrl],
            responseType: 'code',
          },
        },
      },
    },
  });

  const browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      `--ignore-certificate-errors-spki-list=${spki}`,
    ],
  });
  try {
    const page = await browser.newPage();
    await page.goto(appUrl);
    await page.waitForFunction(() => window.amp !== undefined);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${d.endpoint}/domains/${domain}/login?`)),
      page.evaluate(() => window.amp.signInWithRedirect()).catch(() => {}),
    ]);
    await page.getByLabel('Username').fill('una');
    await page.getByLabel('Password').fill(PASSWORD);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(appUrl)),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    // Back in the app: Amplify's listener exchanges the code and keeps the tokens.
    await page.waitForFunction(async () => {
      const s = await window.amp?.fetchAuthSession();
      return Boolean(s?.tokens?.idToken);
    }, undefined, { timeout: 15_000 });
    const signedIn = await page.evaluate(async () => {
      const s = await window.amp.fetchAuthSession();
      const u = await window.amp.getCurrentUser();
      return { username: u.username, email: s.tokens.idToken.payload.email };
    });
    assert.deepEqual(signedIn, { username: 'una', email: 'una@example.com' });

    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${d.endpoint}/domains/${domain}/logout`) || u.href === appUrl),
      page.evaluate(() => window.amp.signOut()).catch(() => {}),
    ]);
    await page.waitForURL((u) => u.href.startsWith(appUrl));
    await page.waitForFunction(() => window.amp !== undefined);
    const after = await page.evaluate(async () => {
      const s = await window.amp.fetchAuthSession();
      return Boolean(s.tokens);
    });
    assert.equal(after, false, 'tokens are gone after signOut');
  } finally {
    await browser.close();
  }
});
