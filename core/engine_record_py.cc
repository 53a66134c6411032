// Python binding of core/ (module trtpack._trtpack_core); py/trtpack/record.py is its public face.
// Meta crosses the boundary as JSON text: Python's json module does the dict <-> text part.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "core/compatibility.h"
#include "core/engine_record.h"
#include "core/plan_header.h"
#include "core/version.h"

namespace py = pybind11;
using namespace trtpack::core;

namespace {

PyObject* record_error_type = nullptr;  // owned by the module for the interpreter's life

std::span<const uint8_t> bytes_of(const py::buffer_info& info) {
  if (info.ndim != 1 || info.itemsize != 1 || (info.ndim == 1 && info.strides[0] != 1))
    throw RecordError("plan", "must be contiguous 1-D bytes (bytes, bytearray, or a 1-D uint8 array)");
  return {static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.shape[0])};
}

py::object ast_of(const DimExpr& e) {
  if (e.kind == DimExpr::Kind::kInt) return py::int_(e.value);
  if (e.kind == DimExpr::Kind::kSymbol) return py::make_tuple("sym", e.symbol);
  return py::make_tuple(std::string(e.op()), ast_of(e.args[0]), ast_of(e.args[1]));
}

py::dict header_dict(const PlanHeader& h) {
  py::dict d;
  d["magic"] = h.magic;
  d["version"] = h.version;
  d["size"] = h.size;
  d["target_mask"] = h.target_mask;
  d["targets"] = h.targets;
  d["unknown_target_bits"] = h.unknown_target_bits;
  return d;
}

// Messages and field names quote the input, possibly cut mid-character: decode leniently, never raise on them.
py::object lenient_str(std::string_view text) {
  return py::reinterpret_steal<py::object>(
      PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace"));
}

template <size_t N>
py::tuple fields_tuple(const FieldInfo (&fields)[N]) {
  py::list out;
  for (const FieldInfo& f : fields)
    out.append(py::make_tuple(f.key, std::string(kind_name(f.kind)), f.required, f.since, f.doc));
  return py::tuple(out);
}

}  // namespace

PYBIND11_MODULE(_trtpack_core, m) {
  m.doc() = "trtpack core: engine record format and compatibility rules (see docs/FORMAT.md)";
  m.attr("__version__") = trtpack::kVersion;
  m.attr("FORMAT_ID") = kFormatId;
  m.attr("FORMAT_VERSION") = py::make_tuple(kFormatMajor, kFormatMinor);
  m.attr("MAX_PLAN_SIZE") = kMaxPlanSize;
  m.attr("DTYPES") = py::tuple(py::cast(allowed_dtypes()));
  // (key, kind, required, since, doc) per field, from core/record_fields.h.
  m.attr("FIELDS") = fields_tuple(kMetaFields);
  m.attr("TENSOR_FIELDS") = fields_tuple(kTensorFields);
  m.attr("SYMBOL_RANGE_FIELDS") = fields_tuple(kSymbolRangeFields);
  py::dict bits;
  for (const auto& [bit, name] : target_bits()) bits[py::str(name)] = bit;
  m.attr("TARGET_BITS") = bits;

  record_error_type = PyErr_NewExceptionWithDoc("trtpack._trtpack_core.RecordError",
                                                "An engine record failed validation; .field names the field.",
                                                PyExc_ValueError, nullptr);
  m.attr("RecordError") = py::handle(record_error_type);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const RecordError& e) {
      py::object error = py::reinterpret_borrow<py::object>(record_error_type)(lenient_str(e.what()));
      error.attr("field") = lenient_str(e.field());
      PyErr_SetObject(record_error_type, error.ptr());
    }
  });

  m.def("canonical_meta", [](std::string_view text) { return encode_meta(parse_meta(text)); }, py::arg("meta"),
        "Parses, upgrades and validates meta JSON text; returns its canonical text (sorted keys, no spaces).");
  m.def(
      "check_plan",
      [](std::string_view meta_text, py::buffer plan, bool verify_hash) {
        EngineMeta meta = parse_meta(meta_text);
        py::buffer_info info = plan.request();
        std::span<const uint8_t> bytes = bytes_of(info);
        py::gil_scoped_release unlocked;
        check_plan(meta, bytes, verify_hash);
      },
      py::arg("meta"), py::arg("plan"), py::arg("verify_hash") = false,
      "Checks plan bytes against the record: size; TensorRT-RTX header; SHA-256 if verify_hash.");
  m.def(
      "xxh3",
      [](py::buffer data) {
        py::buffer_info info = data.request();
        std::span<const uint8_t> bytes = bytes_of(info);
        py::gil_scoped_release unlocked;
        return xxh3_hex(bytes);
      },
      py::arg("data"), "XXH3-128 of contiguous bytes, 32 lowercase hex digits (the record's plan_xxh3).");
  py::class_<Xxh3Stream>(m, "Xxh3Stream", "XXH3-128 over bytes given in pieces.")
      .def(py::init<>())
      .def(
          "update",
          [](Xxh3Stream& self, py::buffer data) {
            py::buffer_info info = data.request();
            std::span<const uint8_t> bytes = bytes_of(info);
            py::gil_scoped_release unlocked;
            self.update(bytes);
          },
          py::arg("data"))
      .def("hexdigest", &Xxh3Stream::hex);
  m.def(
      "plan_header", [](py::buffer plan) { return header_dict(read_plan_header(bytes_of(plan.request()))); },
      py::arg("plan"), "Reads the 64-byte TensorRT-RTX plan header.");
  m.def(
      "parse_dim", [](std::string_view expr) { return ast_of(parse_dim_expr(expr)); }, py::arg("expr"),
      "Parses a dim expression into nested tuples: int | ('sym', name) | (op, a, b).");
  m.def(
      "eval_dim",
      [](std::string_view expr, const std::map<std::string, int64_t>& symbols) {
        return eval_dim_expr(parse_dim_expr(expr), symbols);
      },
      py::arg("expr"), py::arg("symbols"), "Evaluates a dim expression with Python's // and % semantics.");
  m.def(
      "compatibility",
      [](std::string_view meta_text, bool cuda, std::optional<std::string> sm,
         std::map<std::string, std::string> backends) {
        Verdict v = compatibility(parse_meta(meta_text), Machine{cuda, std::move(sm), std::move(backends)});
        return py::make_tuple(v.usable, v.reason);
      },
      py::arg("meta"), py::arg("cuda"), py::arg("sm"), py::arg("backends"),
      "Can a machine run this engine? Returns (usable, reason); the reason names the fix.");
}
