/* One pass over a DEFAULT-format orderbook frame without building its units, and over a
 * ticker or trade frame without building the fields nobody reads (optional;
 * upbitpipe.upbit.codec.parse_book_lite and parse_flat_lite are the interface).
 *
 * Python C-API only. When no sink reads a book's units (the Kafka sink alone: its value is
 * spliced from the frame's bytes), the collector needs of a book only what dedup, the gate
 * and the splice read: the head fields and the best prices. orjson would build 30 unit
 * dicts and 120 floats for it, and free them at once.
 *
 *   scan_book(raw: bytes) -> dict | None
 *       The dict codec.parse_data makes of ``raw`` less ``orderbook_units`` and ``spread``
 *       (the caller adds the spread and checks the timestamp's range), or None when
 *       ``raw`` is not a book in exactly the form Upbit sends:
 *
 *         {"type":"orderbook","code":"<s>","timestamp":<int>,"total_ask_size":<n>,
 *          "total_bid_size":<n>,"orderbook_units":[{"ask_price":<n>,"bid_price":<n>,
 *          "ask_size":<n>,"bid_size":<n>},...]<tail>}
 *
 *       compact (no whitespace), the last byte the closing brace. ``<s>`` is printable
 *       ASCII without ``"`` or ``\``; ``<n>`` a JSON number: an integer literal of at most
 *       18 digits is an int, a literal with a fraction or an exponent a float (correctly
 *       rounded as orjson rounds: by one division when the digits and the power of ten are
 *       exact doubles, else by PyOS_string_to_double), finite, at most 64 bytes
 *       long. ``<tail>`` is any number of ``,"key":value`` where a value is a string as
 *       ``<s>`` without brackets or braces, a number, true, false or null; no key twice,
 *       and no key or string value that the record sets or that splice_record refuses
 *       after the units (the head keys, ``market``, the derived ones, anything from
 *       ``_``). So for every book it accepts, splice_record accepts the frame too.
 *       ``best_ask_price`` (``best_bid_price``) is the price of the first unit whose ask
 *       (bid) size is above zero, None when there is none. Never raises but MemoryError.
 *
 *   scan_flat(raw: bytes) -> dict | None
 *       ``type``, ``market`` and the fields of the dict codec.parse_data makes of ``raw``
 *       that a collector whose sinks read no records reads (the gate, dedup, the resume
 *       point, the trade and ticker checks: see wanted_key), those present, or None when
 *       ``raw`` is not a ticker or trade in the flat form Upbit sends:
 *
 *         {"type":"trade"|"ticker","code":"<s>"<tail>}
 *
 *       compact, the last byte the closing brace, ``<tail>`` at most 64 ``,"key":value``
 *       with values as in a book's tail (strings ``<s>``: brackets allowed, nothing is
 *       searched for in them), no key twice and none of ``type``, ``code``, ``market`` or
 *       one from ``_``. No value is checked beyond its JSON form (numbers as above, also
 *       those not read): the caller runs parse_data's checks on what it returns. So
 *       orjson reads the frame as the same flat object, and the record is the frame with
 *       its one ``code`` key renamed (codec.splice_record). Never raises but MemoryError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

#define MAX_INT_DIGITS 18   /* |n| < 10**18: any int64, never orjson's uint64 or float */
#define MAX_NUMBER_LEN 64   /* a fraction without an exponent stays finite */

/* interned keys and frequent values, made once at import */
static PyObject *s_type, *s_orderbook, *s_market, *s_timestamp, *s_total_ask_size,
    *s_total_bid_size, *s_best_ask_price, *s_best_bid_price, *s_level, *s_stream_type,
    *s_realtime, *s_snapshot, *s_trade, *s_ticker, *s_sequential_id, *s_trade_timestamp,
    *s_trade_price, *s_trade_volume, *s_acc_trade_volume, *s_prev_closing_price,
    *s_change_price, *s_best_ask_size, *s_best_bid_size;

typedef struct {
    const char *start;
    const char *end;
    const char *digits; /* the integer part's first digit */
    const char *point;  /* the '.', or NULL */
    int is_float;
    int has_exp;
} Number;

/* the powers of ten a double holds exactly */
static const double POW10[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};
#define MAX_EXACT_MANTISSA (1ULL << 53)

#define IS_DIGIT(c) ((unsigned char)((c) - '0') < 10)

/* The first byte at or after p that is not an ASCII digit (or end): eight at a time. */
INLINE const char *
skip_digits(const char *p, const char *end)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t high = 0xF0F0F0F0F0F0F0F0ULL, threes = 0x3030303030303030ULL;
    while (end - p >= 8) {
        uint64_t x, other;
        memcpy(&x, p, 8);
        /* a byte is a digit when its high nibble is 3 and adding 6 keeps it so; a carry
         * out of a byte only follows a byte already flagged (0xFA and up) */
        other = ((x & high) ^ threes) | (((x + 0x0606060606060606ULL) & high) ^ threes);
        if (other)
            return p + (__builtin_ctzll(other) >> 3);
        p += 8;
    }
#endif
    while (p < end && IS_DIGIT(*p))
        p++;
    return p;
}

/* The JSON number at p, or NULL when there is none (or it is one the scanner refuses).
 * Only checks its form: most of a book's numbers are never read. */
static inline const char *
lex_number(const char *p, const char *end, Number *n)
{
    const char *s = p;

    n->start = p;
    n->point = NULL;
    n->is_float = 0;
    n->has_exp = 0;
    if (p < end && *p == '-')
        p++;
    n->digits = p;
    if (p >= end)
        return NULL;
    if (*p == '0') {
        p++;
        if (p < end && IS_DIGIT(*p)) /* a leading zero: not JSON */
            return NULL;
    }
    else if (IS_DIGIT(*p))
        p = skip_digits(p + 1, end);
    else
        return NULL;
    if (p < end && *p == '.') {
        n->point = p;
        p++;
        if (p >= end || !IS_DIGIT(*p))
            return NULL;
        p = skip_digits(p + 1, end);
        n->is_float = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !IS_DIGIT(*p))
            return NULL;
        while (p < end && IS_DIGIT(*p))
            p++;
        n->is_float = 1;
        n->has_exp = 1;
    }
    if (p - s > MAX_NUMBER_LEN || (!n->is_float && p - n->digits > MAX_INT_DIGITS))
        return NULL;
    n->end = p;
    return p;
}

/* An integer literal's value (at most MAX_INT_DIGITS digits: no overflow). */
static long long
number_int(const Number *n)
{
    long long value = 0;
    for (const char *p = n->digits; p < n->end; p++)
        value = value * 10 + (*p - '0');
    return n->digits != n->start ? -value : value;
}

/* 1 with *out the number's value, 0 to refuse it (not finite), -1 on an error set. */
static int
number_double(const Number *n, double *out)
{
    char *stop = NULL;
    double d;

    if (!n->is_float) {
        *out = (double)number_int(n);
        return 1;
    }
    if (!n->has_exp && n->end - n->digits <= MAX_INT_DIGITS + 1 && n->end - n->point <= 23) {
        /* Clinger's fast path: an exact mantissa over an exact power of ten is one
         * correctly rounded division, the value strtod would give */
        unsigned long long mantissa = 0;
        for (const char *p = n->digits; p < n->end; p++)
            if (p != n->point)
                mantissa = mantissa * 10 + (unsigned long long)(*p - '0');
        if (mantissa <= MAX_EXACT_MANTISSA) {
            d = (double)mantissa / POW10[n->end - n->point - 1];
            *out = n->digits != n->start ? -d : d;
            return 1;
        }
    }
    d = PyOS_string_to_double(n->start, &stop, NULL);
    if (d == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    if (stop != n->end || !isfinite(d))
        return 0;
    *out = d;
    return 1;
}

/* 1 with *out a new int or float, 0 to refuse, -1 on an error set. */
static int
number_object(const Number *n, PyObject **out)
{
    double d;
    int ok;

    if (!n->is_float) {
        *out = PyLong_FromLongLong(number_int(n));
        return *out == NULL ? -1 : 1;
    }
    ok = number_double(n, &d);
    if (ok <= 0)
        return ok;
    *out = PyFloat_FromDouble(d);
    return *out == NULL ? -1 : 1;
}

/* A string's content after its opening quote at p: returns the closing quote, or NULL.
 * ``tail``: brackets and braces refused too (splice_record looks for them after the units). */
static const char *
lex_string(const char *p, const char *end, int tail)
{
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c < 0x20 || c > 0x7e || c == '\\')
            return NULL;
        if (tail && (c == '[' || c == ']' || c == '{' || c == '}'))
            return NULL;
        p++;
    }
    return NULL;
}

#define SAME(s, len, word) ((size_t)(len) == sizeof(word) - 1 && memcmp(s, word, (size_t)(len)) == 0)

/* A tail key or string value the record sets, or that splice_record refuses after the
 * units (its _BOOK_TAIL_CLASH); the head keys too (orjson would let a later one win). */
static int
clashes(const char *s, Py_ssize_t len)
{
    if (len > 0 && s[0] == '_')
        return 1;
    switch (len) {
    case 4:
        return SAME(s, len, "type") || SAME(s, len, "code");
    case 6:
        return SAME(s, len, "market") || SAME(s, len, "spread");
    case 9:
        return SAME(s, len, "timestamp");
    case 14:
        return SAME(s, len, "total_ask_size") || SAME(s, len, "total_bid_size")
            || SAME(s, len, "best_ask_price") || SAME(s, len, "best_bid_price");
    case 15:
        return SAME(s, len, "orderbook_units");
    default:
        return 0;
    }
}

/* A str of the ASCII text s[0:len], one of the interned ones when it is one. */
static PyObject *
ascii_str(const char *s, Py_ssize_t len)
{
    PyObject *known = NULL, *str;

    if (SAME(s, len, "level"))
        known = s_level;
    else if (SAME(s, len, "stream_type"))
        known = s_stream_type;
    else if (SAME(s, len, "REALTIME"))
        known = s_realtime;
    else if (SAME(s, len, "SNAPSHOT"))
        known = s_snapshot;
    if (known != NULL) {
        Py_INCREF(known);
        return known;
    }
    str = PyUnicode_New(len, 127);
    if (str != NULL)
        memcpy(PyUnicode_1BYTE_DATA(str), s, (size_t)len);
    return str;
}

/* p[0:n] == text[0:n], eight bytes at a time; inlined with a constant text the compiler
 * makes the text's words immediates (a memcmp call costs more) */
INLINE int
starts(const char *p, const char *text, size_t n)
{
    uint64_t a, b;
    uint32_t c, d;

    while (n >= 8) {
        memcpy(&a, p, 8);
        memcpy(&b, text, 8);
        if (a != b)
            return 0;
        p += 8;
        text += 8;
        n -= 8;
    }
    if (n >= 4) {
        memcpy(&c, p, 4);
        memcpy(&d, text, 4);
        if (c != d)
            return 0;
        p += 4;
        text += 4;
        n -= 4;
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] != text[i])
            return 0;
    return 1;
}

#define EXPECT(text)                                                                      \
    do {                                                                                  \
        size_t n_ = sizeof(text) - 1;                                                     \
        if ((size_t)(end - p) < n_ || !starts(p, text, n_))                               \
            goto refuse;                                                                  \
        p += n_;                                                                          \
    } while (0)

#define NUMBER(into)                                                                      \
    do {                                                                                  \
        p = lex_number(p, end, &(into));                                                  \
        if (p == NULL)                                                                    \
            goto refuse;                                                                  \
    } while (0)

/* a unit's number that is not read: still refused when it is not finite */
#define CHECK_FINITE(num)                                                                 \
    do {                                                                                  \
        if ((num).has_exp) {                                                              \
            ok = number_double(&(num), &value);                                           \
            if (ok < 0)                                                                   \
                goto error;                                                               \
            if (ok == 0)                                                                  \
                goto refuse;                                                              \
        }                                                                                 \
    } while (0)

static PyObject *
scan_book(PyObject *Py_UNUSED(module), PyObject *raw)
{
    const char *p, *end, *q;
    PyObject *book = NULL, *code = NULL, *ask = NULL, *bid = NULL, *key = NULL, *item = NULL;
    Number num, ask_price, bid_price, ask_size, bid_size;
    double value;
    int ok;

    if (!PyBytes_CheckExact(raw))
        Py_RETURN_NONE;
    p = PyBytes_AS_STRING(raw);
    end = p + PyBytes_GET_SIZE(raw);
    book = PyDict_New();
    if (book == NULL)
        return NULL;
    if (PyDict_SetItem(book, s_type, s_orderbook) < 0)
        goto error;

    EXPECT("{\"type\":\"orderbook\",\"code\":\"");
    q = lex_string(p, end, 0);
    if (q == NULL)
        goto refuse;
    code = PyUnicode_New(q - p, 127);
    if (code == NULL)
        goto error;
    memcpy(PyUnicode_1BYTE_DATA(code), p, (size_t)(q - p));
    p = q + 1;

    EXPECT(",\"timestamp\":");
    NUMBER(num);
    if (num.is_float || *num.start == '-')
        goto refuse;
    item = PyLong_FromLongLong(number_int(&num));
    if (item == NULL || PyDict_SetItem(book, s_timestamp, item) < 0)
        goto error;
    Py_CLEAR(item);

    EXPECT(",\"total_ask_size\":");
    NUMBER(num);
    ok = number_object(&num, &item);
    if (ok < 0)
        goto error;
    if (ok == 0)
        goto refuse;
    if (PyDict_SetItem(book, s_total_ask_size, item) < 0)
        goto error;
    Py_CLEAR(item);

    EXPECT(",\"total_bid_size\":");
    NUMBER(num);
    ok = number_object(&num, &item);
    if (ok < 0)
        goto error;
    if (ok == 0)
        goto refuse;
    if (PyDict_SetItem(book, s_total_bid_size, item) < 0)
        goto error;
    Py_CLEAR(item);

    EXPECT(",\"orderbook_units\":[");
    if (p < end && *p == ']')
        p++;
    else {
        for (;;) {
            EXPECT("{\"ask_price\":");
            NUMBER(ask_price);
            EXPECT(",\"bid_price\":");
            NUMBER(bid_price);
            EXPECT(",\"ask_size\":");
            NUMBER(ask_size);
            EXPECT(",\"bid_size\":");
            NUMBER(bid_size);
            EXPECT("}");
            if (ask == NULL) {
                ok = number_double(&ask_size, &value);
                if (ok < 0)
                    goto error;
                if (ok == 0)
                    goto refuse;
                if (value > 0) {
                    ok = number_object(&ask_price, &ask);
                    if (ok < 0)
                        goto error;
                    if (ok == 0)
                        goto refuse;
                }
                else
                    CHECK_FINITE(ask_price);
            }
            else {
                CHECK_FINITE(ask_price);
                CHECK_FINITE(ask_size);
            }
            if (bid == NULL) {
                ok = number_double(&bid_size, &value);
                if (ok < 0)
                    goto error;
                if (ok == 0)
                    goto refuse;
                if (value > 0) {
                    ok = number_object(&bid_price, &bid);
                    if (ok < 0)
                        goto error;
                    if (ok == 0)
                        goto refuse;
                }
                else
                    CHECK_FINITE(bid_price);
            }
            else {
                CHECK_FINITE(bid_price);
                CHECK_FINITE(bid_size);
            }
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            EXPECT("]");
            break;
        }
    }

    while (p < end && *p == ',') { /* the tail: flat keys after the units */
        p++;
        EXPECT("\"");
        q = lex_string(p, end, 1);
        if (q == NULL || clashes(p, q - p))
            goto refuse;
        key = ascii_str(p, q - p);
        if (key == NULL)
            goto error;
        p = q + 1;
        EXPECT(":");
        if (p >= end)
            goto refuse;
        if (*p == '"') {
            p++;
            q = lex_string(p, end, 1);
            if (q == NULL || clashes(p, q - p))
                goto refuse;
            item = ascii_str(p, q - p);
            if (item == NULL)
                goto error;
            p = q + 1;
        }
        else if (*p == 't') {
            EXPECT("true");
            item = Py_NewRef(Py_True);
        }
        else if (*p == 'f') {
            EXPECT("false");
            item = Py_NewRef(Py_False);
        }
        else if (*p == 'n') {
            EXPECT("null");
            item = Py_NewRef(Py_None);
        }
        else {
            NUMBER(num);
            ok = number_object(&num, &item);
            if (ok < 0)
                goto error;
            if (ok == 0)
                goto refuse;
        }
        ok = PyDict_Contains(book, key);
        if (ok < 0)
            goto error;
        if (ok)
            goto refuse; /* a key twice */
        if (PyDict_SetItem(book, key, item) < 0)
            goto error;
        Py_CLEAR(key);
        Py_CLEAR(item);
    }
    EXPECT("}");
    if (p != end)
        goto refuse;

    if (PyDict_SetItem(book, s_market, code) < 0
        || PyDict_SetItem(book, s_best_ask_price, ask != NULL ? ask : Py_None) < 0
        || PyDict_SetItem(book, s_best_bid_price, bid != NULL ? bid : Py_None) < 0)
        goto error;
    Py_DECREF(code);
    Py_XDECREF(ask);
    Py_XDECREF(bid);
    return book;

refuse:
    Py_XDECREF(book);
    Py_XDECREF(code);
    Py_XDECREF(ask);
    Py_XDECREF(bid);
    Py_XDECREF(key);
    Py_XDECREF(item);
    Py_RETURN_NONE;

error:
    Py_XDECREF(book);
    Py_XDECREF(code);
    Py_XDECREF(ask);
    Py_XDECREF(bid);
    Py_XDECREF(key);
    Py_XDECREF(item);
    return NULL;
}

/* -- flat frames: DEFAULT tickers and trades ---------------------------------------------- */

#if PY_VERSION_HEX < 0x030D0000
#define NEW_DICT(n) _PyDict_NewPresized(n)
#else
#define NEW_DICT(n) PyDict_New()
#endif

/* A string's content after its opening quote at p, printable ASCII without '"' or '\\':
 * returns the closing quote, or NULL (lex_string without ``tail``, eight bytes at a time). */
INLINE const char *
lex_plain(const char *p, const char *end)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        uint64_t x, q, b, d, special;
        memcpy(&x, p, 8);
        q = x ^ (ones * '"');
        b = x ^ (ones * '\\');
        d = x ^ (ones * 0x7f);
        /* a byte is flagged when it is '"', '\\', DEL, below 0x20 or from 0x80: the lowest
         * flag is exact (a borrow only runs up from a byte flagged already) */
        special = ((q - ones) & ~q) | ((b - ones) & ~b) | ((d - ones) & ~d)
            | ((x - ones * 0x20) & ~x) | x;
        special &= highs;
        if (special) {
            p += __builtin_ctzll(special) >> 3;
            return *p == '"' ? p : NULL;
        }
        p += 8;
    }
#endif
    return lex_string(p, end, 0);
}

#define MAX_FLAT_KEYS 64 /* Upbit's ticker has 35 */
#define KEY_SLOTS 128    /* a power of two, at least twice MAX_FLAT_KEYS */

/* A key seen, as its offset from the frame's start (never 0) and its length. */
typedef struct {
    uint32_t offset;
    uint32_t len;
} KeySlot;

/* A cheap hash of a key: its length and its first and last eight bytes (or fewer). */
static inline uint64_t
key_hash(const char *s, size_t len)
{
    uint64_t a = 0, b = 0;

    if (len >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + len - 8, 8);
    }
    else
        memcpy(&a, s, len);
    a = (a ^ (uint64_t)len) * 0x9E3779B97F4A7C15ULL;
    b = (b + (a >> 29)) * 0xC2B2AE3D27D4EB4FULL;
    return (a ^ b) ^ ((a ^ b) >> 32);
}

/* 1 when the key s[0:len] is new in ``slots`` (and now remembered), 0 when it is there. */
static int
remember_key(KeySlot *slots, const char *base, const char *s, size_t len)
{
    size_t i = (size_t)key_hash(s, len) & (KEY_SLOTS - 1);

    while (slots[i].offset != 0) {
        if (slots[i].len == len && memcmp(base + slots[i].offset, s, len) == 0)
            return 0;
        i = (i + 1) & (KEY_SLOTS - 1);
    }
    slots[i].offset = (uint32_t)(s - base);
    slots[i].len = (uint32_t)len;
    return 1;
}

/* The interned key when s[0:len] is one of the fields read of a trade (``trade``) or a
 * ticker; NULL for any other key (its value is checked, not built). */
static PyObject *
wanted_key(const char *s, size_t len, int trade)
{
    switch (len) {
    case 9:
        return SAME(s, len, "timestamp") ? s_timestamp : NULL;
    case 11:
        return SAME(s, len, "trade_price") ? s_trade_price : NULL;
    case 15:
        return SAME(s, len, "trade_timestamp") ? s_trade_timestamp : NULL;
    case 16:
        return !trade && SAME(s, len, "acc_trade_volume") ? s_acc_trade_volume : NULL;
    }
    if (!trade)
        return NULL;
    switch (len) {
    case 12:
        if (SAME(s, len, "trade_volume"))
            return s_trade_volume;
        return SAME(s, len, "change_price") ? s_change_price : NULL;
    case 13:
        if (SAME(s, len, "sequential_id"))
            return s_sequential_id;
        if (SAME(s, len, "best_ask_size"))
            return s_best_ask_size;
        return SAME(s, len, "best_bid_size") ? s_best_bid_size : NULL;
    case 14:
        if (SAME(s, len, "best_ask_price"))
            return s_best_ask_price;
        return SAME(s, len, "best_bid_price") ? s_best_bid_price : NULL;
    case 18:
        return SAME(s, len, "prev_closing_price") ? s_prev_closing_price : NULL;
    default:
        return NULL;
    }
}

static PyObject *
scan_flat(PyObject *Py_UNUSED(module), PyObject *raw)
{
    const char *p, *end, *q, *base;
    PyObject *data = NULL, *code = NULL, *key, *item = NULL;
    KeySlot slots[KEY_SLOTS];
    Number num;
    double value;
    int ok, trade, keys = 0;

    if (!PyBytes_CheckExact(raw) || PyBytes_GET_SIZE(raw) >= (Py_ssize_t)UINT32_MAX)
        Py_RETURN_NONE;
    base = p = PyBytes_AS_STRING(raw);
    end = p + PyBytes_GET_SIZE(raw);

    EXPECT("{\"type\":\"t");
    if ((size_t)(end - p) >= 5 && starts(p, "rade\"", 5)) {
        trade = 1;
        p += 5;
    }
    else {
        EXPECT("icker\"");
        trade = 0;
    }
    /* sized for what it gets (with codec's marker): no resize on the way */
    data = NEW_DICT(trade ? 14 : 7);
    if (data == NULL)
        return NULL;
    memset(slots, 0, sizeof(slots));
    EXPECT(",\"code\":\"");
    q = lex_plain(p, end);
    if (q == NULL)
        goto refuse;
    code = PyUnicode_New(q - p, 127);
    if (code == NULL)
        goto error;
    memcpy(PyUnicode_1BYTE_DATA(code), p, (size_t)(q - p));
    p = q + 1;
    if (PyDict_SetItem(data, s_type, trade ? s_trade : s_ticker) < 0
        || PyDict_SetItem(data, s_market, code) < 0)
        goto error;
    Py_CLEAR(code);

    while (p < end && *p == ',') {
        p++;
        EXPECT("\"");
        q = lex_plain(p, end);
        if (q == NULL || ++keys > MAX_FLAT_KEYS)
            goto refuse;
        /* the keys the record sets or renames: the full parse decides */
        if ((q > p && *p == '_') || SAME(p, q - p, "type") || SAME(p, q - p, "code")
            || SAME(p, q - p, "market"))
            goto refuse;
        if (!remember_key(slots, base, p, (size_t)(q - p)))
            goto refuse; /* a key twice: orjson keeps the last one */
        key = wanted_key(p, (size_t)(q - p), trade);
        p = q + 1;
        EXPECT(":");
        if (p >= end)
            goto refuse;
        switch (*p) {
        case '"':
            q = lex_plain(p + 1, end);
            if (q == NULL)
                goto refuse;
            if (key != NULL) {
                item = PyUnicode_New(q - p - 1, 127);
                if (item == NULL)
                    goto error;
                memcpy(PyUnicode_1BYTE_DATA(item), p + 1, (size_t)(q - p - 1));
            }
            p = q + 1;
            break;
        case 't':
            EXPECT("true");
            item = key != NULL ? Py_NewRef(Py_True) : NULL;
            break;
        case 'f':
            EXPECT("false");
            item = key != NULL ? Py_NewRef(Py_False) : NULL;
            break;
        case 'n':
            EXPECT("null");
            item = key != NULL ? Py_NewRef(Py_None) : NULL;
            break;
        default:
            NUMBER(num);
            if (key != NULL) {
                ok = number_object(&num, &item);
                if (ok < 0)
                    goto error;
                if (ok == 0)
                    goto refuse;
            }
            else if (num.has_exp) { /* not read, but refused when it is not finite */
                ok = number_double(&num, &value);
                if (ok < 0)
                    goto error;
                if (ok == 0)
                    goto refuse;
            }
        }
        if (item != NULL) {
            if (PyDict_SetItem(data, key, item) < 0)
                goto error;
            Py_CLEAR(item);
        }
    }
    EXPECT("}");
    if (p != end)
        goto refuse;
    return data;

refuse:
    Py_XDECREF(data);
    Py_XDECREF(code);
    Py_XDECREF(item);
    Py_RETURN_NONE;

error:
    Py_XDECREF(data);
    Py_XDECREF(code);
    Py_XDECREF(item);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan_book", scan_book, METH_O,
     "A DEFAULT orderbook frame's parsed dict without units and spread, or None."},
    {"scan_flat", scan_flat, METH_O,
     "The fields of a DEFAULT ticker or trade frame the collector reads, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_bookscan", "One pass over a DEFAULT orderbook, ticker or trade frame.", -1,
    methods, NULL, NULL, NULL, NULL,
};

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__bookscan(void)
{
    if (intern(&s_type, "type") < 0 || intern(&s_orderbook, "orderbook") < 0
        || intern(&s_market, "market") < 0 || intern(&s_timestamp, "timestamp") < 0
        || intern(&s_total_ask_size, "total_ask_size") < 0
        || intern(&s_total_bid_size, "total_bid_size") < 0
        || intern(&s_best_ask_price, "best_ask_price") < 0
        || intern(&s_best_bid_price, "best_bid_price") < 0 || intern(&s_level, "level") < 0
        || intern(&s_stream_type, "stream_type") < 0 || intern(&s_realtime, "REALTIME") < 0
        || intern(&s_snapshot, "SNAPSHOT") < 0 || intern(&s_trade, "trade") < 0
        || intern(&s_ticker, "ticker") < 0 || intern(&s_sequential_id, "sequential_id") < 0
        || intern(&s_trade_timestamp, "trade_timestamp") < 0
        || intern(&s_trade_price, "trade_price") < 0
        || intern(&s_trade_volume, "trade_volume") < 0
        || intern(&s_acc_trade_volume, "acc_trade_volume") < 0
        || intern(&s_prev_closing_price, "prev_closing_price") < 0
        || intern(&s_change_price, "change_price") < 0
        || intern(&s_best_ask_size, "best_ask_size") < 0
        || intern(&s_best_bid_size, "best_bid_size") < 0)
        return NULL;
    return PyModule_Create(&module_def);
}
