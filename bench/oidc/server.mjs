// server.mjs: the authority row's reference (bench/run.sh): oidc-provider issuing RS256 JWT access
// tokens by client_credentials, the client authenticating with private_key_jwt, over HTTPS with
// the same certificate as mivault. One process (node's default), memory adapter.
//
// Usage: node server.mjs PORT CERT.pem KEY.pem CLIENT_ID CLIENT_PUBLIC_KEY.pem RESOURCE
// Prints "listening <issuer>" once ready. The client's key is the mivault state's admin key
// (EC P-256, so assertions are ES256 as with mivault); the token signing key is a fresh RSA-2048
// key (RS256, as mivault's). oidc-provider remembers each assertion's jti (replay detection), so
// the load must never repeat an assertion.
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

const [port, certFile, keyFile, clientId, clientKeyFile, resource] = process.argv.slice(2);
if (!resource) {
  console.error('usage: node server.mjs PORT CERT KEY CLIENT_ID CLIENT_PUBLIC_KEY RESOURCE');
  process.exit(2);
}
const issuer = `https://127.0.0.1:${port}`;
const clientJwk = crypto.createPublicKey(fs.readFileSync(clientKeyFile)).export({ format: 'jwk' });
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'bench' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [{ ...clientJwk, alg: 'ES256', use: 'sig' }] },
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  }],
  jwks: { keys: [signingJwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: '',
        audience: resource,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const server = https.createServer({
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
}, provider.callback());
server.keepAliveTimeout = 120000;
server.listen(Number(port), '127.0.0.1', () => console.log(`listening ${issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
