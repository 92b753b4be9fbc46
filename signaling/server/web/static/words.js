// Verification words, exactly as Parley's app derives them (gui/core/verification.py):
// SHA-256 of "parley-sas-v1\n" + the two sha-256 fingerprints (sorted) joined by "\n";
// the first four bytes pick four of these 256 words. Both ends of a call see the same
// words unless someone swapped a fingerprint on the way.

export const WORDS = Object.freeze([
  "acorn", "actor", "adult", "agent", "alarm", "album", "alley", "amber", "angel", "ankle",
  "apple", "apron", "arena", "arrow", "atlas", "attic", "audio", "award", "bacon", "badge",
  "bagel", "baker", "bamboo", "banjo", "barn", "basil", "basket", "beach", "beacon", "beard",
  "beaver", "bell", "bench", "berry", "bike", "bison", "blade", "blanket", "blossom", "boat",
  "bonnet", "border", "bottle", "boulder", "bracket", "branch", "bread", "brick", "bridge",
  "broom", "brush", "bubble", "bucket", "buffalo", "bugle", "cabin", "cactus", "camel", "camera",
  "candle", "canoe", "canyon", "carpet", "carrot", "castle", "cedar", "cello", "chalk", "cherry",
  "chess", "chimney", "circus", "cliff", "clock", "cloud", "clover", "cobra", "coconut", "comet",
  "compass", "copper", "coral", "cotton", "cougar", "crane", "crayon", "cricket", "crystal",
  "cupcake", "curtain", "cushion", "daisy", "dancer", "delta", "denim", "desert", "diamond",
  "dolphin", "donkey", "dragon", "drum", "eagle", "easel", "echo", "eclipse", "elbow", "ember",
  "engine", "falcon", "feather", "fence", "ferry", "fiddle", "flame", "flute", "forest",
  "fossil", "fountain", "fox", "galaxy", "garden", "garlic", "geyser", "giant", "ginger",
  "giraffe", "glacier", "globe", "goose", "gopher", "grape", "guitar", "hammer", "harbor",
  "harp", "hazel", "helmet", "heron", "hickory", "honey", "horizon", "hornet", "iceberg",
  "igloo", "island", "ivory", "jacket", "jaguar", "jasmine", "jelly", "jigsaw", "kayak",
  "kettle", "kitten", "koala", "ladder", "lagoon", "lantern", "laptop", "lemon", "leopard",
  "lilac", "lily", "lizard", "lobster", "locket", "lotus", "magnet", "mango", "maple", "marble",
  "meadow", "melon", "meteor", "mirror", "mitten", "monkey", "moose", "mosaic", "muffin",
  "napkin", "nectar", "needle", "nutmeg", "oasis", "ocean", "olive", "onion", "orbit", "orchid",
  "otter", "owl", "paddle", "panda", "parrot", "peach", "pebble", "pelican", "pencil", "pepper",
  "piano", "pillow", "pilot", "pine", "planet", "plum", "pocket", "pony", "poppy", "pumpkin",
  "puzzle", "quail", "quartz", "quilt", "rabbit", "radar", "radish", "raven", "reef", "ribbon",
  "river", "robin", "rocket", "saddle", "salmon", "sandal", "satin", "scarf", "shell", "shovel",
  "silver", "sketch", "sled", "slipper", "snail", "sparrow", "spider", "spruce", "squid",
  "statue", "stone", "summit", "sunset", "swan", "tablet", "teapot", "thistle", "thunder",
  "tiger", "timber", "toast", "tomato", "torch", "tractor", "trumpet", "tulip"
]);

const FINGERPRINT = /^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$/gm;

/** The sha-256 fingerprints in an SDP, as "sha-256 AB:CD:..." (algorithm lower, value upper). */
export function sha256Fingerprints(sdp) {
  const found = new Set();
  for (const match of sdp.matchAll(FINGERPRINT)) {
    const alg = match[1].toLowerCase();
    if (alg.startsWith("sha-256")) found.add(`${alg} ${match[2].toUpperCase()}`);
  }
  return [...found].sort();
}

/** The words for the fingerprints `local` and `remote` (their order does not matter). */
export async function verificationWords(local, remote, count = 4) {
  const [first, second] = [local.trim(), remote.trim()].sort();
  const text = new TextEncoder().encode(`parley-sas-v1\n${first}\n${second}`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", text));
  return Array.from(digest.slice(0, count), (byte) => WORDS[byte]);
}

/** The words of a call from its two descriptions, or null while one is missing. */
export async function wordsForCall(localSdp, remoteSdp) {
  if (!localSdp || !remoteSdp) return null;
  const mine = sha256Fingerprints(localSdp);
  const theirs = sha256Fingerprints(remoteSdp);
  if (!mine.length || !theirs.length) return null;
  return verificationWords(mine[0], theirs[0]);
}
