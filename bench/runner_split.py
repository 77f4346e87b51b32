"""The training images runner holds out for `data.validation` (src/data/mnist.rs, hold_out):
rand 0.8's `index::sample` over ChaCha8 seeded with `seed_from_u64(seed)`, stream 2, written
out here so that a peer's objective is accuracy on the very images runner's trials use (two
random 5,000-image splits differ by about 0.2 points of accuracy on their own).
"""
M32 = 0xFFFFFFFF


def _seed_from_u64(state):
    """rand_core's SeedableRng::seed_from_u64: 32 bytes from a PCG32 stream, as 8 LE words."""
    words = []
    for _ in range(8):
        state = (state * 6364136223846793005 + 11634580027462260723) & 0xFFFFFFFFFFFFFFFF
        xorshifted = (((state >> 18) ^ state) >> 27) & M32
        rot = state >> 59
        words.append(((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & M32)
    return words


def _rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & M32


def _block(key, counter, stream):
    """One ChaCha8 block: 16 words."""
    init = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574] + key + [
        counter & M32, counter >> 32, stream & M32, stream >> 32]
    x = list(init)

    def qr(a, b, c, d):
        x[a] = (x[a] + x[b]) & M32
        x[d] = _rotl(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & M32
        x[b] = _rotl(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & M32
        x[d] = _rotl(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & M32
        x[b] = _rotl(x[b] ^ x[c], 7)
    for _ in range(4):
        qr(0, 4, 8, 12), qr(1, 5, 9, 13), qr(2, 6, 10, 14), qr(3, 7, 11, 15)
        qr(0, 5, 10, 15), qr(1, 6, 11, 12), qr(2, 7, 8, 13), qr(3, 4, 9, 14)
    return [(a + b) & M32 for a, b in zip(x, init)]


def _u32s(seed, stream):
    key, counter = _seed_from_u64(seed), 0
    while True:
        yield from _block(key, counter, stream)
        counter += 1


def held_out(n_train, amount, seed):
    """Indices of the held-out images, in the order runner draws them."""
    words = _u32s(seed, 2)
    m4 = 1.6 * amount
    if not (amount > 11 and n_train < (10.0 + m4) * amount):
        raise NotImplementedError("only rand's sample_inplace case (as for MNIST) is written out")
    indices = list(range(n_train))
    for i in range(amount):
        # UniformInt<u32>::sample_single(i..n_train): widening multiply with rejection.
        span = n_train - i
        zone = ((span << (32 - span.bit_length())) & M32) - 1
        while True:
            wide = next(words) * span
            if wide & M32 <= zone:
                break
        j = i + (wide >> 32)
        indices[i], indices[j] = indices[j], indices[i]
    return indices[:amount]


if __name__ == "__main__":
    v = held_out(60000, 5000, 0)
    print(v[:10], sum(v))
