// Drives Latchkey's users API with the real @keycloak/keycloak-admin-client,
// as an operator's script would. Input: one JSON argument; output: one JSON
// object of what the client saw, for the Go test to check.
import KcAdminClient from "@keycloak/keycloak-admin-client";

const cfg = JSON.parse(process.argv[2]);
const kc = new KcAdminClient({ baseUrl: cfg.baseUrl, realmName: cfg.realm });
const out = {};
const status = async (p) => {
  try {
    await p;
    return 0;
  } catch (e) {
    return e.response ? e.response.status : String(e);
  }
};

await kc.auth({ grantType: "client_credentials", clientId: cfg.clientId, clientSecret: cfg.clientSecret });

const found = await kc.users.find({ email: "alice@example.com", exact: true });
out.found = found.map((u) => ({ id: u.id, username: u.username, firstName: u.firstName, enabled: u.enabled }));
out.searched = (await kc.users.find({ search: "ali" })).map((u) => u.email);

const created = await kc.users.create({
  username: "carol@example.com", email: "carol@example.com", firstName: "Carol", lastName: "Jones",
  enabled: true, emailVerified: true, attributes: { locale: ["de"] },
});
out.createdId = created.id;
out.duplicate = await status(kc.users.create({ username: "carol@example.com", email: "carol@example.com" }));
out.unknownField = await status(kc.users.create({ email: "dave@example.com", shoeSize: 44 }));

await kc.users.update({ id: created.id }, { firstName: "Caroline" });
out.updated = await kc.users.findOne({ id: created.id });
out.count = await kc.users.count();

const alice = found[0];
out.aliceSessions = (await kc.users.listSessions({ id: alice.id })).length;
await kc.users.update({ id: alice.id }, { enabled: false });
out.aliceAfter = await kc.users.findOne({ id: alice.id });
out.disabledList = (await kc.users.find({ enabled: false })).map((u) => u.email);

await kc.users.del({ id: created.id });
out.afterDelete = await kc.users.findOne({ id: created.id });
out.deleteAgain = await status(kc.users.del({ id: created.id }));

console.log(JSON.stringify(out));
