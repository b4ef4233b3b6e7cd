// openid-client (an OpenID-certified relying party) against a pool with a domain:
// discovery from the pool's issuer, then machine-to-machine tokens with the
// client_credentials grant and a custom scope of a resource server; the token verified
// with aws-jwt-verify against the pool's JWKS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { JwtRsaVerifier } from 'aws-jwt-verify';
import {
  CreateResourceServerCommand,
  CreateUserPoolClientCommand,
  CreateUserPoolDomainCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { startDaemon } from './lib/daemon.mjs';

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
