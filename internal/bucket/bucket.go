// Package bucket is the one place a user's key becomes a bucket: the gateway places sticky users on
// versions by it, and a flag rollout puts users in its share by it. Both must agree with themselves
// across processes and releases of Aviary (a change would move every sticky user at once), so the
// function lives here alone, with a test that pins its values.
//
// Written by hand: it is eight lines of FNV-1a with a final mix, and no library offers this exact,
// frozen function.
package bucket

// N is the resolution of a split: weights are laid out on [0, N) in basis points.
const N = 10000

// Of hashes a key (FNV-1a, salted, so that one user's buckets in different services or flags are
// independent) to a bucket in [0, N).
func Of(salt, key string) uint32 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(salt); i++ {
		h = (h ^ uint64(salt[i])) * prime
	}
	h = (h ^ 0xff) * prime
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * prime
	}
	// Fold the high bits in: FNV's low bits alone are weak for short keys.
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return uint32(h % N)
}
