package mail

// MaxHanded is how many handed-over messages a sender holds in memory.
const MaxHanded = maxHanded
