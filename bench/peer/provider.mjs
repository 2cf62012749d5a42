// The Node peer of issue 17's comparison, as the issue measured it: panva's
// oidc-provider with its stock development interactions (a login form that
// takes any login without a password check, then the consent form: 8
// requests to a code), everything in memory (nothing persisted, no mail).
// go run ./bench -peer starts it; by hand:
//
//	npm ci --prefix bench/peer && PORT=4000 node bench/peer/provider.mjs
//
// PORT is where it listens; SIGNING_ALG (ES256 or RS256) signs ID tokens.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 4000);
const alg = process.env.SIGNING_ALG || 'ES256';
const issuer = `http://127.0.0.1:${port}`;

const key = alg === 'RS256'
  ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const jwk = { ...key.export({ format: 'jwk' }), alg, use: 'sig', kid: 'bench' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    token_endpoint_auth_method: 'none',
    redirect_uris: ['http://127.0.0.1:9/cb'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    id_token_signed_response_alg: alg,
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // The ID token carries the scopes' claims, as Latchkey's (and Keycloak's) do.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  // A refresh token with every login, as Latchkey issues for the bench's
  // offline_access (oidc-provider would want prompt=consent for it).
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  async findAccount(ctx, id) {
    return { accountId: id, claims: () => ({ sub: id, email: id, email_verified: true, name: 'Bench User' }) };
  },
});

provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
