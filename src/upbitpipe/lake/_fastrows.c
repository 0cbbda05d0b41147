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

static PyMethodDef methods[] = {
    {"book_units_count", (PyCFunction)(void (*)(void))book_units_count, METH_FASTCALL,
     "Units in all records' lists, or -1 when one is not a dict with a list."},
    {"book_units_size", (PyCFunction)(void (*)(void))book_units_size, METH_FASTCALL,
     "Bytes book_units_fill needs for n records of total units."},
    {"book_units_fill", (PyCFunction)(void (*)(void))book_units_fill, METH_FASTCALL,
     "Write the units as Arrow buffers; their null counts, or None when irregular."},
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
