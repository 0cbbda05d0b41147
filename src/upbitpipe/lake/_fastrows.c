/* The lake sink's conversion kernels (optional; upbitpipe.lake.fastrows is the interface).
 *
 * Python C-API only. Both functions read the collector's records (dicts) and accept only
 * what pyarrow's own conversion would turn into the same values; anything else makes them
 * answer "irregular" so that the caller takes its usual path, which decides.
 *
 *   book_units_count(records, key) -> int
 *       The number of units in all records' ``key`` lists, or -1 when a record is not a
 *       dict or its ``key`` value is not a list (missing or None included).
 *
 *   book_units_fill(records, key, names, buffer, total) -> tuple[int, int, int, int] | None
 *       Writes the units into ``buffer`` (writable, at least book_units_size(n, total)
 *       bytes): four float64 value arrays of ``total`` values (one per name, in order),
 *       four validity bitmaps of ceil(total / 64) * 8 bytes, then n + 1 int32 offsets.
 *       Returns each value array's null count, or None when a unit is not a dict, lacks a
 *       name, or holds anything but a float, an int of at most 2**53 in magnitude (the
 *       ints a double holds exactly: pyarrow refuses larger ones) or None. Bools, numpy
 *       scalars and float or int subclasses are irregular too (pyarrow would convert some;
 *       the caller's usual path does that).
 *
 *   flat_rows(records, names, kinds) -> tuple[capsule, int] | None
 *       The records' values of ``names`` as one Arrow struct array whose children are
 *       ``kinds`` (one byte a name: 'd' float64, 'i' int64, 'b' bool, 's' utf8), through
 *       the Arrow C data interface: a capsule owning the ArrowArray and its address (for
 *       pyarrow's import, which moves it; the capsule then frees the struct). A missing
 *       key or None is a null. None (irregular) when a record is not a dict or a value is
 *       not what the kind takes: float64 as book_units_fill; int64 an int in range (not a
 *       bool, not a float: pyarrow would truncate it); bool True or False; utf8 a str.
 *
 *   only_ints(records, names) -> bool
 *       True when every record's value of every name is missing, None or an int (not a
 *       bool): pyarrow would truncate a float in an int64 column silently.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define UNIT_FIELDS 4
#define MAX_EXACT_INT (1LL << 53)

static Py_ssize_t
bitmap_bytes(Py_ssize_t total)
{
    return ((total + 63) / 64) * 8;
}

static PyObject *
book_units_count(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "book_units_count(records: list, key: str)");
        return NULL;
    }
    PyObject *records = args[0], *key = args[1];
    Py_ssize_t n = PyList_GET_SIZE(records), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        if (!PyDict_CheckExact(record))
            return PyLong_FromLong(-1);
        PyObject *units = PyDict_GetItemWithError(record, key);
        if (units == NULL) {
            if (PyErr_Occurred())
                return NULL;
            return PyLong_FromLong(-1);
        }
        if (!PyList_CheckExact(units))
            return PyLong_FromLong(-1);
        total += PyList_GET_SIZE(units);
    }
    return PyLong_FromSsize_t(total);
}

static PyObject *
book_units_size(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "book_units_size(records: int, total: int)");
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[0]);
    Py_ssize_t total = PyLong_AsSsize_t(args[1]);
    if ((n == -1 || total == -1) && PyErr_Occurred())
        return NULL;
    return PyLong_FromSsize_t(UNIT_FIELDS * (total * 8 + bitmap_bytes(total)) + (n + 1) * 4);
}

/* 1: a value, 0: null, -1: irregular */
static int
unit_value(PyObject *value, double *out)
{
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
        return 1;
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long whole = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || whole > MAX_EXACT_INT || whole < -MAX_EXACT_INT)
            return -1;
        *out = (double)whole;
        return 1;
    }
    if (value == Py_None) {
        *out = 0.0;
        return 0;
    }
    return -1;
}

/* 1: done, 0: irregular, -1: an error is set; the units of records[i] from units[at] on */
static int
fill_record(PyObject *record, PyObject *key, PyObject *names, double **values, uint8_t **valid,
            Py_ssize_t *nulls, Py_ssize_t total, Py_ssize_t *at)
{
    if (!PyDict_CheckExact(record))
        return 0;
    PyObject *units = PyDict_GetItemWithError(record, key);
    if (units == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyList_CheckExact(units))
        return 0;
    int status = 1;
    Py_INCREF(units);  /* a key's __eq__ could run Python code: hold what is read */
    for (Py_ssize_t j = 0; status == 1 && j < PyList_GET_SIZE(units); j++) {
        if (*at >= total || *at >= INT32_MAX) {
            status = 0;  /* the lists changed since they were counted */
            break;
        }
        PyObject *unit = PyList_GET_ITEM(units, j);
        if (!PyDict_CheckExact(unit)) {
            status = 0;
            break;
        }
        Py_INCREF(unit);
        for (int f = 0; f < UNIT_FIELDS; f++) {
            PyObject *value = PyDict_GetItemWithError(unit, PyTuple_GET_ITEM(names, f));
            if (value == NULL) {
                status = PyErr_Occurred() ? -1 : 0;
                break;
            }
            int kind = unit_value(value, &values[f][*at]);
            if (kind < 0) {
                status = 0;
                break;
            }
            if (kind == 0) {
                valid[f][*at >> 3] &= (uint8_t) ~(1u << (*at & 7));
                nulls[f]++;
            }
        }
        Py_DECREF(unit);
        (*at)++;
    }
    Py_DECREF(units);
    return status;
}

static PyObject *
book_units_fill(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyList_Check(args[0]) || !PyTuple_Check(args[2]) ||
        PyTuple_GET_SIZE(args[2]) != UNIT_FIELDS) {
        PyErr_SetString(PyExc_TypeError,
                        "book_units_fill(records: list, key: str, names: 4-tuple, buffer, total)");
        return NULL;
    }
    PyObject *records = args[0], *key = args[1], *names = args[2];
    Py_ssize_t total = PyLong_AsSsize_t(args[4]);
    if (total == -1 && PyErr_Occurred())
        return NULL;
    if (total < 0) {
        PyErr_SetString(PyExc_ValueError, "book_units_fill: total < 0");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(records);
    Py_ssize_t bitmap = bitmap_bytes(total);
    Py_buffer view;
    if (PyObject_GetBuffer(args[3], &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (view.len < UNIT_FIELDS * (total * 8 + bitmap) + (n + 1) * 4) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "book_units_fill: the buffer is too small");
        return NULL;
    }
    char *base = (char *)view.buf;
    double *values[UNIT_FIELDS];
    uint8_t *valid[UNIT_FIELDS];
    Py_ssize_t nulls[UNIT_FIELDS] = {0, 0, 0, 0};
    for (int f = 0; f < UNIT_FIELDS; f++) {
        values[f] = (double *)(base + f * total * 8);
        valid[f] = (uint8_t *)(base + UNIT_FIELDS * total * 8 + f * bitmap);
        memset(valid[f], 0xFF, (size_t)bitmap);
    }
    int32_t *offsets = (int32_t *)(base + UNIT_FIELDS * (total * 8 + bitmap));
    Py_ssize_t at = 0;
    int status = 1;
    offsets[0] = 0;
    for (Py_ssize_t i = 0; status == 1 && i < PyList_GET_SIZE(records) && i < n; i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        Py_INCREF(record);
        status = fill_record(record, key, names, values, valid, nulls, total, &at);
        Py_DECREF(record);
        offsets[i + 1] = (int32_t)at;
    }
    PyBuffer_Release(&view);
    if (status < 0)
        return NULL;
    if (status == 0 || at != total || PyList_GET_SIZE(records) != n)
        Py_RETURN_NONE;
    return Py_BuildValue("(nnnn)", nulls[0], nulls[1], nulls[2], nulls[3]);
}

static PyObject *
only_ints(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "only_ints(records: list, names: tuple)");
        return NULL;
    }
    PyObject *records = args[0], *names = args[1];
    Py_ssize_t n = PyList_GET_SIZE(records), k = PyTuple_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        if (!PyDict_CheckExact(record))
            Py_RETURN_FALSE;
        for (Py_ssize_t f = 0; f < k; f++) {
            PyObject *value = PyDict_GetItemWithError(record, PyTuple_GET_ITEM(names, f));
            if (value == NULL) {
                if (PyErr_Occurred())
                    return NULL;
                continue;
            }
            if (value != Py_None && !PyLong_CheckExact(value))
                Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

/* ---- flat columns, exported through the Arrow C data interface ---------------------- */

/* The Arrow C data interface's array struct (arrow/c/abi.h), declared here as the spec asks
 * (https://arrow.apache.org/docs/format/CDataInterface.html): no Arrow library needed. */
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE
struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};
struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};
#endif

/* every buffer of an array (and the buffers pointer array itself) is its own malloc */
static void
release_array(struct ArrowArray *array)
{
    for (int64_t i = 0; i < array->n_children; i++) {
        struct ArrowArray *child = array->children[i];
        if (child->release != NULL)
            child->release(child);
        free(child);
    }
    free(array->children);
    for (int64_t i = 0; i < array->n_buffers; i++)
        free((void *)array->buffers[i]);
    free(array->buffers);
    array->release = NULL;
}

static void
capsule_free(PyObject *capsule)
{
    struct ArrowArray *array = PyCapsule_GetPointer(capsule, "arrow_array");
    if (array == NULL) {
        PyErr_Clear();
        return;
    }
    if (array->release != NULL)  /* not moved into pyarrow */
        array->release(array);
    free(array);
}

/* One column being filled: kind 'd' float64, 'i' int64, 'b' bool, 's' utf8 string. */
typedef struct {
    char kind;
    uint8_t *valid;
    Py_ssize_t nulls;
    char *data;  /* 8 bytes a row (d, i), a bit a row (b), the UTF-8 bytes (s) */
    int32_t *offsets;  /* s */
    Py_ssize_t used, capacity;  /* s: bytes in data */
} Column;

static int
column_init(Column *column, char kind, Py_ssize_t n)
{
    memset(column, 0, sizeof(*column));
    column->kind = kind;
    size_t bitmap = (size_t)(n + 7) / 8 + 1;
    column->valid = malloc(bitmap);
    if (column->valid == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(column->valid, 0xFF, bitmap);
    if (kind == 'd' || kind == 'i') {
        column->data = malloc((size_t)n * 8 + 8);
    } else if (kind == 'b') {
        column->data = calloc(bitmap, 1);
    } else if (kind == 's') {
        column->capacity = n * 12 + 16;
        column->data = malloc((size_t)column->capacity);
        column->offsets = malloc(((size_t)n + 1) * 4);
        if (column->offsets != NULL)
            column->offsets[0] = 0;
    } else {
        PyErr_Format(PyExc_ValueError, "unknown column kind %c", kind);
        return -1;
    }
    if (column->data == NULL || (kind == 's' && column->offsets == NULL)) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
column_free(Column *column)
{
    free(column->valid);
    free(column->data);
    free(column->offsets);
    memset(column, 0, sizeof(*column));
}

/* 1: stored, 0: irregular, -1: error set */
static int
column_put(Column *column, Py_ssize_t row, PyObject *value)
{
    if (value == NULL || value == Py_None) {
        column->valid[row >> 3] &= (uint8_t) ~(1u << (row & 7));
        column->nulls++;
        if (column->kind == 'd' || column->kind == 'i')
            memset(column->data + row * 8, 0, 8);
        else if (column->kind == 's')
            column->offsets[row + 1] = (int32_t)column->used;
        return 1;
    }
    switch (column->kind) {
    case 'd': {
        double number;
        if (unit_value(value, &number) != 1)
            return 0;
        memcpy(column->data + row * 8, &number, 8);
        return 1;
    }
    case 'i': {
        if (!PyLong_CheckExact(value))
            return 0;
        int overflow = 0;
        long long whole = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow)
            return 0;
        if (whole == -1 && PyErr_Occurred())
            return -1;
        int64_t stored = (int64_t)whole;
        memcpy(column->data + row * 8, &stored, 8);
        return 1;
    }
    case 'b':
        if (value == Py_True)
            column->data[row >> 3] |= (char)(1u << (row & 7));
        else if (value != Py_False)
            return 0;
        return 1;
    default: {  /* 's' */
        if (!PyUnicode_CheckExact(value))
            return 0;
        Py_ssize_t size;
        const char *text = PyUnicode_AsUTF8AndSize(value, &size);
        if (text == NULL) {  /* a lone surrogate: pyarrow refuses it as well */
            PyErr_Clear();
            return 0;
        }
        if (column->used + size > INT32_MAX)
            return 0;
        if (column->used + size > column->capacity) {
            Py_ssize_t capacity = column->capacity * 2 + size;
            char *grown = realloc(column->data, (size_t)capacity);
            if (grown == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            column->data = grown;
            column->capacity = capacity;
        }
        memcpy(column->data + column->used, text, (size_t)size);
        column->used += size;
        column->offsets[row + 1] = (int32_t)column->used;
        return 1;
    }
    }
}

/* the column as a child array; its buffers move into it */
static struct ArrowArray *
column_export(Column *column, Py_ssize_t n)
{
    struct ArrowArray *child = calloc(1, sizeof(*child));
    int64_t count = column->kind == 's' ? 3 : 2;
    const void **buffers = calloc((size_t)count, sizeof(void *));
    if (child == NULL || buffers == NULL) {
        free(child);
        free(buffers);
        PyErr_NoMemory();
        return NULL;
    }
    if (column->nulls == 0) {
        free(column->valid);
        column->valid = NULL;
    }
    buffers[0] = column->valid;
    if (column->kind == 's') {
        buffers[1] = column->offsets;
        buffers[2] = column->data;
    } else {
        buffers[1] = column->data;
    }
    column->valid = NULL;
    column->data = NULL;
    column->offsets = NULL;
    child->length = n;
    child->null_count = column->nulls;
    child->n_buffers = count;
    child->buffers = buffers;
    child->release = release_array;
    return child;
}

static PyObject *
flat_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyTuple_Check(args[1]) ||
        !PyBytes_Check(args[2]) || PyTuple_GET_SIZE(args[1]) != PyBytes_GET_SIZE(args[2])) {
        PyErr_SetString(PyExc_TypeError, "flat_rows(records: list, names: tuple, kinds: bytes)");
        return NULL;
    }
    PyObject *records = args[0], *names = args[1];
    const char *kinds = PyBytes_AS_STRING(args[2]);
    Py_ssize_t n = PyList_GET_SIZE(records), k = PyTuple_GET_SIZE(names);
    if (n >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "flat_rows: too many records");
        return NULL;
    }
    Column *columns = calloc((size_t)k + 1, sizeof(Column));
    if (columns == NULL)
        return PyErr_NoMemory();
    int status = 1;
    Py_ssize_t made = 0;
    for (; made < k; made++) {
        if (column_init(&columns[made], kinds[made], n) < 0) {
            status = -1;
            made++;
            break;
        }
    }
    for (Py_ssize_t row = 0; status == 1 && row < n; row++) {
        if (PyList_GET_SIZE(records) != n) {  /* changed under us */
            status = 0;
            break;
        }
        PyObject *record = PyList_GET_ITEM(records, row);
        if (!PyDict_CheckExact(record)) {
            status = 0;
            break;
        }
        Py_INCREF(record);
        for (Py_ssize_t f = 0; status == 1 && f < k; f++) {
            PyObject *value = PyDict_GetItemWithError(record, PyTuple_GET_ITEM(names, f));
            if (value == NULL && PyErr_Occurred())
                status = -1;
            else
                status = column_put(&columns[f], row, value);
        }
        Py_DECREF(record);
    }
    PyObject *capsule = NULL;
    struct ArrowArray *top = NULL;
    if (status == 1) {
        top = calloc(1, sizeof(*top));
        const void **buffers = calloc(1, sizeof(void *));
        struct ArrowArray **children = calloc((size_t)k + 1, sizeof(*children));
        if (top == NULL || buffers == NULL || children == NULL) {
            free(top);
            free(buffers);
            free(children);
            top = NULL;
            PyErr_NoMemory();
            status = -1;
        } else {
            top->length = n;
            top->n_buffers = 1;
            top->buffers = buffers;
            top->children = children;
            top->release = release_array;
            for (Py_ssize_t f = 0; f < k; f++) {
                children[f] = column_export(&columns[f], n);
                if (children[f] == NULL) {
                    status = -1;
                    break;
                }
                top->n_children++;
            }
        }
    }
    for (Py_ssize_t f = 0; f < made; f++)
        column_free(&columns[f]);
    free(columns);
    if (status == 1) {
        capsule = PyCapsule_New(top, "arrow_array", capsule_free);
        if (capsule == NULL) {
            top->release(top);
            free(top);
            return NULL;
        }
        return Py_BuildValue("(NK)", capsule, (unsigned long long)(uintptr_t)top);
    }
    if (top != NULL) {
        top->release(top);
        free(top);
    }
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"book_units_count", (PyCFunction)(void (*)(void))book_units_count, METH_FASTCALL,
     "Units in all records' lists, or -1 when one is not a dict with a list."},
    {"book_units_size", (PyCFunction)(void (*)(void))book_units_size, METH_FASTCALL,
     "Bytes book_units_fill needs for n records of total units."},
    {"book_units_fill", (PyCFunction)(void (*)(void))book_units_fill, METH_FASTCALL,
     "Write the units as Arrow buffers; their null counts, or None when irregular."},
    {"flat_rows", (PyCFunction)(void (*)(void))flat_rows, METH_FASTCALL,
     "The records' named values as a struct array: (capsule, its address), or None."},
    {"only_ints", (PyCFunction)(void (*)(void))only_ints, METH_FASTCALL,
     "True when every record's named values are missing, None or ints."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fastrows", "The lake sink's conversion kernels.", -1, methods,
};

PyMODINIT_FUNC
PyInit__fastrows(void)
{
    return PyModule_Create(&module_def);
}
