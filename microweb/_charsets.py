"""The charsets a client may choose for text it sends: one allow-list, used for every decode.

NOTE: ``bytes.decode(name)`` with a client-chosen name runs any codec Python has: ``punycode``
is quadratic, ``undefined`` always fails, ``unicode_escape`` interprets backslashes (TRAPS.md 24),
and ``codecs`` has no flag that filters them out. So only labels of the WHATWG Encoding Standard
(https://encoding.spec.whatwg.org/#names-and-labels, the web's list) are accepted, each mapped to
the Python codec of its encoding; every one of those codecs decodes in linear time. Left out: the
``replacement`` encoding (it decodes nothing) and ``x-user-defined`` (Python has no codec).

Two deliberate departures from the standard, which reads these labels as windows-1252 (what
browsers do with pages): the US-ASCII labels decode as strict ASCII and the ISO-8859-1 labels as
ISO-8859-1, because a program that labels a request body so means exactly that charset. Python's
own spelling ``latin-1`` is accepted as one more ISO-8859-1 label.
"""

from __future__ import annotations

import codecs

# NOTE: Python codec -> the WHATWG labels that select it, space-separated.
_LABELS_BY_CODEC = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "utf-16-le": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
    "utf-16-be": "unicodefffe utf-16be",
    "ascii": "ansi_x3.4-1968 ascii us-ascii",
    "latin-1": (
        "cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 iso88591 iso_8859-1 "
        "iso_8859-1:1987 l1 latin1 latin-1"
    ),
    "cp1252": "cp1252 windows-1252 x-cp1252",
    "cp866": "866 cp866 csibm866 ibm866",
    "iso8859-2": (
        "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 l2 latin2"
    ),
    "iso8859-3": (
        "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 l3 latin3"
    ),
    "iso8859-4": (
        "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 l4 latin4"
    ),
    "iso8859-5": (
        "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 "
        "iso_8859-5:1988"
    ),
    "iso8859-6": (
        "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 "
        "iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987"
    ),
    "iso8859-7": (
        "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 "
        "iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek"
    ),
    "iso8859-8": (
        "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 "
        "iso88598 iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical"
    ),
    "iso8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso8859-13": "iso-8859-13 iso8859-13 iso885913",
    "iso8859-14": "iso-8859-14 iso8859-14 iso885914",
    "iso8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso8859-16": "iso-8859-16",
    "koi8-r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8-u": "koi8-ru koi8-u",
    "mac-roman": "csmacintosh mac macintosh x-mac-roman",
    "mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "cp1250": "cp1250 windows-1250 x-cp1250",
    "cp1251": "cp1251 windows-1251 x-cp1251",
    "cp1253": "cp1253 windows-1253 x-cp1253",
    "cp1254": (
        "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 "
        "iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254"
    ),
    "cp1255": "cp1255 windows-1255 x-cp1255",
    "cp1256": "cp1256 windows-1256 x-cp1256",
    "cp1257": "cp1257 windows-1257 x-cp1257",
    "cp1258": "cp1258 windows-1258 x-cp1258",
    # NOTE: the standard decodes its GBK labels with the gb18030 decoder, a superset.
    "gb18030": (
        "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk gb18030"
    ),
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "euc-jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "iso2022-jp": "csiso2022jp iso-2022-jp",
    "cp932": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "cp949": (
        "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 "
        "ksc_5601 windows-949"
    ),
}

CODECS: dict[str, str] = {
    label: codec for codec, labels in _LABELS_BY_CODEC.items() for label in labels.split()
}

# SPEC: WHATWG Encoding, "decode": a byte order mark wins over any label. It won over a
# Unicode label only, so that a UTF-8 file labelled windows-1252 (a BOM is no text a legacy
# charset would start with: "ï»¿") was read as mojibake, and as ASCII was a 400.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def find_codec(label: str) -> str | None:
    """Return the Python codec for a charset label, or ``None`` when it is not on the list.

    Labels are matched without case and surrounding whitespace.
    """
    return CODECS.get(label.strip(" \t\n\f\r").lower())


def sniffed(data: bytes, codec: str) -> tuple[str, int]:
    """Return the codec that decodes ``data`` and the length of its byte order mark: the
    mark's codec (UTF-8, or UTF-16 of its byte order) where it starts with one, else ``codec``.
    """
    for bom, bom_codec in _BOMS:
        if data.startswith(bom):
            return bom_codec, len(bom)
    return codec, 0


def decode(data: bytes, codec: str) -> str:
    """Decode ``data`` with a codec from ``find_codec``; a leading byte order mark is dropped
    and picks the codec instead, whatever the label (see ``sniffed``).

    Raises:
        UnicodeDecodeError: If the bytes are not valid in the codec.
    """
    used, start = sniffed(data, codec)
    return (data[start:] if start else data).decode(used)
