"""RouterOS API framing: length prefixes, words and sentences (shared/routeros.md §1).

A word is a length prefix and that many bytes; a sentence is words ended by a zero-length
word. Lengths are 1-4 bytes on output; a 5-byte length (0xF0 + 4 bytes) is accepted on
input. Words are decoded as UTF-8 with surrogateescape, so bytes that are not UTF-8 go
back on the wire exactly as they came in.

The functions work on any binary stream with read(n) (sock.makefile("rb")) and any socket
with sendall(), so tests can speak the raw protocol with the same code the server uses.
"""

ENCODING = "utf-8"
ERRORS = "surrogateescape"


class ProtocolError(ValueError):
    """Bytes that are not RouterOS API framing."""


class ConnectionLost(ConnectionError):
    """The peer closed the stream in the middle of a sentence."""


def encode_length(length: int) -> bytes:
    if length < 0:
        raise ProtocolError(f"negative length {length}")
    if length < 0x80:
        return bytes((length,))
    if length < 0x4000:
        return (length | 0x8000).to_bytes(2, "big")
    if length < 0x200000:
        return (length | 0xC00000).to_bytes(3, "big")
    if length < 0x10000000:
        return (length | 0xE0000000).to_bytes(4, "big")
    # 5-byte lengths exist in the protocol but librouteros cannot read them: never send one.
    raise ProtocolError(f"word of {length} bytes is too long to send")


def extra_length_bytes(first: int) -> int:
    """How many bytes follow the first byte of a length prefix."""
    if first < 0x80:
        return 0
    if first < 0xC0:
        return 1
    if first < 0xE0:
        return 2
    if first < 0xF0:
        return 3
    if first == 0xF0:
        return 4
    raise ProtocolError(f"reserved control byte 0x{first:02X}")


def decode_length(prefix: bytes) -> int:
    first = prefix[0]
    if first < 0x80:
        return first
    if first < 0xC0:
        return int.from_bytes(prefix[:2], "big") ^ 0x8000
    if first < 0xE0:
        return int.from_bytes(prefix[:3], "big") ^ 0xC00000
    if first < 0xF0:
        return int.from_bytes(prefix[:4], "big") ^ 0xE0000000
    if first == 0xF0:
        return int.from_bytes(prefix[1:5], "big")
    raise ProtocolError(f"reserved control byte 0x{first:02X}")


def encode_word(word: str) -> bytes:
    data = word.encode(ENCODING, ERRORS)
    return encode_length(len(data)) + data


def encode_sentence(words) -> bytes:
    """One sentence: each word with its prefix, then the terminating zero byte."""
    return b"".join([encode_word(word) for word in words]) + b"\x00"


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) < n:
        raise ConnectionLost("connection closed in the middle of a sentence")
    return data


def read_word(stream) -> str | None:
    """The next word; "" at the end of a sentence; None at a clean end of stream."""
    first = stream.read(1)
    if not first:
        return None
    if first == b"\x00":
        return ""
    extra = extra_length_bytes(first[0])
    prefix = first + _read_exact(stream, extra) if extra else first
    length = decode_length(prefix)
    return _read_exact(stream, length).decode(ENCODING, ERRORS)


def read_sentence(stream) -> list[str] | None:
    """The next sentence as a list of words ([] for an empty sentence), or None if the
    stream ended cleanly between sentences."""
    words = []
    while True:
        word = read_word(stream)
        if word is None:
            if words:
                raise ConnectionLost("connection closed in the middle of a sentence")
            return None
        if word == "":
            return words
        words.append(word)


def write_sentence(sock, words) -> None:
    sock.sendall(encode_sentence(words))


def parse_attributes(words) -> dict[str, str]:
    """Reply or command attribute words (`=key=value`) as a dict; other words are skipped.
    The value may itself contain "=": only the first "=" after the key splits."""
    attrs = {}
    for word in words:
        if word.startswith("="):
            key, _, value = word[1:].partition("=")
            attrs[key] = value
    return attrs
