/* A small, dependency-free parser for GaitGraph pose CSV lines (image_name + 51 numbers).
 *
 * Part of gafnet (MIT licence). Loaded with ctypes by gafnet/gait/fastcsv.py, which compiles it on first use;
 * when no C compiler is available, gafnet falls back to Arrow's CSV reader (same results, slower).
 *
 * Semantics (the same as gafnet's Arrow path, see poses.py):
 *   - lines end at "\n", "\r\n" or a lone "\r"; a line of zero bytes is empty (skipped, counted);
 *   - fields are separated by ",", there is no quoting;
 *   - the first field is the image name (copied out verbatim), the others are values;
 *   - a value is trimmed of spaces/tabs and is a number ([+-]digits[.digits][e[+-]digits], or inf/infinity),
 *     a null-like token (empty, nan, na, n/a, null, none, #n/a, -1.#ind, 1.#qnan; any case) read as NaN,
 *     or non-numeric;
 *   - numbers are converted to double (correctly rounded) and then to float32, as numpy does when the
 *     original code calls np.array(strings, dtype=float32).
 */
#define _GNU_SOURCE /* strtod_l and newlocale in glibc */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__APPLE__)
#include <xlocale.h>
#endif

#define ROW_OK 0
#define ROW_EMPTY 1
#define ROW_WRONG_COUNT 2
#define ROW_NON_NUMERIC 3
#define ROW_NOT_FINITE 4

#define VALUE_NUMBER 0
#define VALUE_NOT_FINITE 1
#define VALUE_NON_NUMERIC 2

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Bytes of the white-space character that starts at p (0 if none): what Python's float() strips, i.e.
 * str.isspace(): ASCII \t \v \f, 0x1C-0x1F, space, and in UTF-8 U+0085, U+00A0, U+1680, U+2000-U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000. (\n and \r end the line before a field gets here.) */
static int space_at(const unsigned char *p, const unsigned char *e) {
    if (p >= e) return 0;
    unsigned c = p[0];
    if (c == ' ' || c == '\t' || c == '\v' || c == '\f' || (c >= 0x1C && c <= 0x1F)) return 1;
    if (c == 0xC2 && e - p >= 2 && (p[1] == 0x85 || p[1] == 0xA0)) return 2;
    if (e - p < 3) return 0;
    if (c == 0xE1 && p[1] == 0x9A && p[2] == 0x80) return 3;
    if (c == 0xE2 && p[1] == 0x80 && (p[2] <= 0x8A || p[2] == 0xA8 || p[2] == 0xA9 || p[2] == 0xAF) && p[2] >= 0x80)
        return 3;
    if (c == 0xE2 && p[1] == 0x81 && p[2] == 0x9F) return 3;
    if (c == 0xE3 && p[1] == 0x80 && p[2] == 0x80) return 3;
    return 0;
}

/* Bytes of the white-space character that ends at e (0 if none). */
static int space_before(const unsigned char *p, const unsigned char *e) {
    for (int n = 1; n <= 3; n++)
        if (e - p >= n && space_at(e - n, e) == n) return n;
    return 0;
}

static int equals_nocase(const char *p, const char *e, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(e - p) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != word[i]) return 0;
    }
    return 1;
}

/* strtod in the "C" locale, whatever the process's locale is (a German locale reads "1.5" as 1). */
static locale_t c_locale;

int gafnet_init(void) {
    if (c_locale == (locale_t)0) c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    return c_locale != (locale_t)0;
}

static double slow_strtod(const char *p, const char *e) {
    char small[128];
    size_t n = (size_t)(e - p);
    char *text = n < sizeof small ? small : (char *)malloc(n + 1);
    if (text == NULL || c_locale == (locale_t)0) {
        if (text != small) free(text);
        return NAN;
    }
    memcpy(text, p, n);
    text[n] = '\0';
    double value = strtod_l(text, NULL, c_locale);
    if (text != small) free(text);
    return value;
}

/* One value field [p, e): VALUE_NUMBER (finite), VALUE_NOT_FINITE (NaN, inf, null-like, overflow) or
 * VALUE_NON_NUMERIC; *out is set in the first two cases. */
static int parse_value(const char *p, const char *e, float *out) {
    for (int n; (n = space_at((const unsigned char *)p, (const unsigned char *)e)) > 0;) p += n;
    for (int n; (n = space_before((const unsigned char *)p, (const unsigned char *)e)) > 0;) e -= n;
    const char *start = p;
    int negative = 0;
    if (p < e && (*p == '+' || *p == '-')) negative = (*p++ == '-');
    uint64_t mantissa = 0;
    int digits = 0, significant = 0, exponent = 0, exact = 1;
    while (p < e && (unsigned)(*p - '0') < 10) {
        if (significant < 19) {
            mantissa = mantissa * 10 + (uint64_t)(*p - '0');
            if (mantissa) significant++;
        } else {
            exponent++;
            exact = 0;
        }
        p++;
        digits++;
    }
    if (p < e && *p == '.') {
        p++;
        while (p < e && (unsigned)(*p - '0') < 10) {
            if (significant < 19) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                if (mantissa) significant++;
                exponent--;
            } else {
                exact = 0;
            }
            p++;
            digits++;
        }
    }
    if (digits > 0) {
        if (p < e && (*p == 'e' || *p == 'E')) {
            p++;
            int exp_negative = 0, exp_digits = 0, exp_value = 0;
            if (p < e && (*p == '+' || *p == '-')) exp_negative = (*p++ == '-');
            while (p < e && (unsigned)(*p - '0') < 10) {
                if (exp_value < 100000) exp_value = exp_value * 10 + (*p - '0');
                else exact = 0; /* a huge exponent: strtod says inf or 0 */
                p++;
                exp_digits++;
            }
            exponent += exp_negative ? -exp_value : exp_value;
            if (exp_digits == 0) p = NULL; /* "1e": not a number */
        }
    }
    if (digits > 0 && p == e) {
        double value;
        if (mantissa == 0) {
            value = 0.0;
        } else if (exact && mantissa <= (1ULL << 53) && exponent >= -22 && exponent <= 22) {
            value = exponent < 0 ? (double)mantissa / POW10[-exponent] : (double)mantissa * POW10[exponent];
        } else {
            value = fabs(slow_strtod(start, e));
        }
        float f = (float)(negative ? -value : value);
        *out = f;
        return isfinite(f) ? VALUE_NUMBER : VALUE_NOT_FINITE;
    }
    /* not a number: [+-]inf, [+-]infinity, [+-]nan, or another null-like token */
    const char *word = start;
    if (word < e && (*word == '+' || *word == '-')) word++;
    if (equals_nocase(word, e, "inf") || equals_nocase(word, e, "infinity")) {
        *out = (*start == '-') ? -INFINITY : INFINITY;
        return VALUE_NOT_FINITE;
    }
    static const char *const NULL_LIKE[] = {"", "na", "n/a", "null", "none", "#n/a", "-1.#ind", "1.#qnan"};
    int null_like = equals_nocase(word, e, "nan");
    for (size_t i = 0; !null_like && i < sizeof NULL_LIKE / sizeof NULL_LIKE[0]; i++)
        null_like = equals_nocase(start, e, NULL_LIKE[i]);
    if (null_like) {
        *out = NAN;
        return VALUE_NOT_FINITE;
    }
    return VALUE_NON_NUMERIC;
}

/* 1 if [p, e) is valid UTF-8 (ASCII, the usual case, is checked first). */
static int valid_utf8(const char *p, const char *e) {
    const unsigned char *s = (const unsigned char *)p, *end = (const unsigned char *)e;
    while (s < end && *s < 0x80) s++;
    while (s < end) {
        unsigned c = *s;
        int extra;
        unsigned minimum;
        if (c < 0x80) { s++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) { extra = 1; minimum = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { extra = 2; minimum = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { extra = 3; minimum = 0x10000; }
        else return 0;
        if (end - s <= extra) return 0;
        unsigned code = c & (0x3F >> extra);
        for (int i = 1; i <= extra; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            code = (code << 6) | (s[i] & 0x3F);
        }
        if (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
        s += extra + 1;
    }
    return 1;
}

/* The common case in one pass: [-]digits[.digits] with at most 15 digits, followed by a delimiter or the
 * end. On success *pos is at the delimiter and 1 is returned; otherwise nothing is consumed and 0 returned
 * (the caller then finds the field's end and calls parse_value). */
static inline int fast_value(const char **pos, const char *end, float *out) {
    const char *p = *pos;
    int negative = 0;
    if (p < end && *p == '-') { negative = 1; p++; }
    uint64_t mantissa = 0;
    int digits = 0, fraction = 0;
    while (p < end && (unsigned)(*p - '0') < 10) { mantissa = mantissa * 10 + (uint64_t)(*p++ - '0'); digits++; }
    if (p < end && *p == '.') {
        p++;
        while (p < end && (unsigned)(*p - '0') < 10) { mantissa = mantissa * 10 + (uint64_t)(*p++ - '0'); fraction++; }
    }
    digits += fraction;
    if (digits == 0 || digits > 15 || (p < end && *p != ',' && *p != '\n' && *p != '\r')) return 0;
    double value = (double)mantissa / POW10[fraction];
    *out = (float)(negative ? -value : value);
    *pos = p;
    return 1;
}

/* The number of lines in [buf, buf + size): line ends ("\n", "\r\n" or a lone "\r"), plus one for a last
 * line without a line end. gafnet_parse_lines finds exactly this many. */
int64_t gafnet_count_lines(const char *buf, int64_t size) {
    const char *end = buf + size;
    int64_t count = 0;
    for (const char *p = buf; p < end; count++) {
        p = (const char *)memchr(p, '\n', (size_t)(end - p));
        if (p == NULL) break;
        p++;
    }
    for (const char *p = buf; p < end; p++) { /* a "\r" not followed by "\n" ends a line too */
        p = (const char *)memchr(p, '\r', (size_t)(end - p));
        if (p == NULL) break;
        if (p + 1 == end || p[1] != '\n') count++;
    }
    if (size > 0 && end[-1] != '\n' && end[-1] != '\r') count++;
    return count;
}

/* The length of a name without its frame part, when that part is one separator character, the frame
 * number and an extension ("_00319.png", "F016.jpg", "/000042.jpg"); else the whole length. */
static int64_t frame_prefix(const char *s, int64_t n) {
    int64_t dot = n - 1;
    while (dot >= 0 && s[dot] != '.') dot--;
    if (dot < 0) return n;
    int64_t digits = dot;
    while (digits > 0 && (unsigned)(s[digits - 1] - '0') < 10) digits--;
    if (digits == dot || digits == 0) return n;
    return digits - 1;
}

/* Parse the lines of [buf, buf + size). For line i (0-based; at most `capacity` lines):
 *   status[i]           ROW_* code (worst value code wins: non-numeric over not finite);
 *   columns[i]          number of fields (0 for an empty line);
 *   values[i * nvalues + j]  value j (only meaningful when columns[i] == nvalues + 1);
 *   name bytes          names[name_offsets[i] : name_offsets[i + 1]] (the first field; empty for empty lines,
 *                       and for a name that is not UTF-8);
 *   prefix bytes        prefixes[prefix_offsets[i] : prefix_offsets[i + 1]]: the name without its frame part
 *                       (see frame_prefix).
 * Returns the number of lines, or -1 if `capacity` was too small. */
int64_t gafnet_parse_lines(const char *buf, int64_t size, int32_t nvalues, int64_t capacity, float *values,
                           int8_t *status, int32_t *columns, int64_t *name_offsets, char *names,
                           int64_t *prefix_offsets, char *prefixes) {
    const char *p = buf, *end = buf + size;
    int64_t line = 0, name_end = 0, prefix_end = 0;
    name_offsets[0] = 0;
    prefix_offsets[0] = 0;
    while (p < end) {
        if (line >= capacity) return -1;
        float *row = values + line * (int64_t)nvalues;
        int8_t row_status = ROW_OK;
        int32_t fields = 0;
        /* the name: up to the first comma or line end */
        const char *q = p;
        while (q < end && *q != ',' && *q != '\n' && *q != '\r') q++;
        if (valid_utf8(p, q)) { /* a name that is not UTF-8 is left empty: it then fails the name check */
            memcpy(names + name_end, p, (size_t)(q - p));
            name_end += q - p;
            int64_t cut = frame_prefix(p, q - p);
            memcpy(prefixes + prefix_end, p, (size_t)cut);
            prefix_end += cut;
        }
        int empty = (q == p) && (q == end || *q != ',');
        fields = empty ? 0 : 1;
        while (q < end && *q == ',') {
            const char *f = ++q;
            if (fields <= nvalues && fast_value(&q, end, &row[fields - 1])) {
                fields++;
                continue;
            }
            while (q < end && *q != ',' && *q != '\n' && *q != '\r') q++;
            if (fields <= nvalues) {
                int code = parse_value(f, q, &row[fields - 1]);
                if (code == VALUE_NON_NUMERIC) row_status = ROW_NON_NUMERIC;
                else if (code == VALUE_NOT_FINITE && row_status == ROW_OK) row_status = ROW_NOT_FINITE;
            }
            fields++;
        }
        if (empty) row_status = ROW_EMPTY;
        else if (fields != nvalues + 1) row_status = ROW_WRONG_COUNT;
        status[line] = row_status;
        columns[line] = fields;
        name_offsets[line + 1] = name_end;
        prefix_offsets[line + 1] = prefix_end;
        line++;
        if (q < end) { /* the line end: \n, \r\n or \r */
            if (*q == '\r' && q + 1 < end && q[1] == '\n') q++;
            q++;
        }
        p = q;
    }
    return line;
}
