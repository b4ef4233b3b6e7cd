#!/usr/bin/env python3
"""Generates crates/cognate-proto/src/model.rs from botocore's cognito-idp service model.

The wire shapes (field names, required members, enums, length/range/pattern constraints,
which operations need no signature) are Cognito's contract; deriving them from the same
model the AWS SDKs are generated from keeps us byte-compatible without hand-copying 374
structures. Run it after upgrading botocore: `python3 scripts/gen-proto.py`.
"""
import gzip, json, os, re, sys

import botocore

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "crates", "cognate-proto", "src", "model.rs")
src = os.path.join(os.path.dirname(botocore.__file__), "data", "cognito-idp", "2016-04-18", "service-2.json")
model = json.load(gzip.open(src + ".gz")) if not os.path.exists(src) else json.load(open(src))
S = model["shapes"]
OPS = model["operations"]

# The model marks identifiers such as ClientIdType and UsernameType sensitive too; we redact
# only what is a secret, so ids stay readable in logs and handler code.
SECRET_SHAPES = {"PasswordType", "SecretHashType", "SessionType", "TokenModelType", "SecretCodeType",
                 "SoftwareTokenMFAUserCodeType", "ClientSecretType", "AuthParametersType",
                 "ChallengeResponsesType", "ConfirmationCodeType"}

KEYWORDS = {"type", "match", "ref", "self", "use", "mod", "enum", "struct", "loop", "move", "impl", "fn", "as", "in", "where", "box", "final", "override"}


def snake(name):
    for plural in ("URLs", "ARNs", "IDs"):
        name = name.replace(plural, plural[:-1].capitalize() + "s")
    name = name.replace("OAuth", "Oauth")
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = s.lower()
    return "r#" + s if s in KEYWORDS else s


def variant(value):
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", value) if p]
    v = "".join(p[:1].upper() + p[1:].lower() for p in parts)
    if not v or v[0].isdigit():
        v = "V" + v
    return v


def lower_camel(name):
    return name[:1].lower() + name[1:]


def rust_pattern(p):
    if "(?<" in p:
        return None  # look-behind: not supported by the regex crate; length limits still apply
    p = p.replace("\\w", "0-9A-Za-z_")
    return "^(?:" + p + ")$"


def is_enum(shape):
    return shape["type"] == "string" and "enum" in shape


def rtype(name):
    s = S[name]
    t = s["type"]
    sens = name in SECRET_SHAPES
    if t == "structure":
        r = name
    elif t == "string":
        r = name if is_enum(s) else "String"
    elif t in ("integer", "long"):
        r = "i64"
    elif t == "boolean":
        r = "bool"
    elif t == "timestamp":
        r = "f64"
    elif t == "blob":
        r = "String"
    elif t == "list":
        r = "Vec<" + rtype(s["member"]["shape"]) + ">"
    elif t == "map":
        r = "BTreeMap<" + rtype(s["key"]["shape"]) + ", " + rtype(s["value"]["shape"]) + ">"
    else:
        raise SystemExit("unknown type " + t)
    if sens and t in ("string", "map"):
        r = "Sensitive<" + r + ">"
    return r


patterns = []


def pattern_index(p):
    rp = rust_pattern(p)
    if rp is None:
        return None
    if rp not in patterns:
        patterns.append(rp)
    return patterns.index(rp)


def checks(shape_name, expr, path_expr, depth=0):
    """Rust statements validating `expr` (a reference to a value of shape `shape_name`)."""
    s = S[shape_name]
    t = s["type"]
    sens = shape_name in SECRET_SHAPES
    out = []
    if t == "string" and not is_enum(s):
        val = f"{expr}.expose()" if sens else f"{expr}.as_str()"
        if "min" in s:
            out.append(f"check_min_len({val}, {s['min']}, &{path_expr}, errs);")
        if "max" in s:
            out.append(f"check_max_len({val}, {s['max']}, &{path_expr}, errs);")
        if "pattern" in s:
            i = pattern_index(s["pattern"])
            if i is not None:
                out.append(f"check_pattern({val}, {i}, &{path_expr}, errs);")
    elif t in ("integer", "long"):
        if "min" in s:
            out.append(f"check_min_num(*{expr}, {s['min']}, &{path_expr}, errs);")
        if "max" in s:
            out.append(f"check_max_num(*{expr}, {s['max']}, &{path_expr}, errs);")
    elif t == "structure":
        out.append(f"{expr}.validate_at(&{path_expr}, errs);")
    elif t == "list":
        if "min" in s:
            out.append(f"check_min_items({expr}.len(), {s['min']}, &{path_expr}, errs);")
        if "max" in s:
            out.append(f"check_max_items({expr}.len(), {s['max']}, &{path_expr}, errs);")
        inner = checks(s["member"]["shape"], f"item{depth}", f"format!(\"{{}}.{{}}.member\", {path_expr}, i{depth} + 1)", depth + 1)
        if inner:
            out.append(f"for (i{depth}, item{depth}) in {expr}.iter().enumerate() {{")
            out += ["    " + l for l in inner]
            out.append("}")
    elif t == "map":
        m = f"{expr}.expose()" if sens else expr
        if "max" in s:
            out.append(f"check_max_items({m}.len(), {s['max']}, &{path_expr}, errs);")
        kin = checks(s["key"]["shape"], f"k{depth}", f"format!(\"{{}}.key\", {path_expr})", depth + 1)
        vin = checks(s["value"]["shape"], f"v{depth}", f"format!(\"{{}}.value\", {path_expr})", depth + 1)
        if kin or vin:
            out.append(f"for (k{depth}, v{depth}) in {m}.iter() {{")
            out += ["    " + l for l in kin + vin]
            out.append(f"    let _ = (k{depth}, v{depth});")
            out.append("}")
    return out


lines = [
    "// @generated by scripts/gen-proto.py from botocore's cognito-idp service model. Do not edit.",
    "#![allow(clippy::all, clippy::pedantic, missing_docs, unused_variables)]",
    "use std::collections::BTreeMap;",
    "use serde::{Deserialize, Serialize};",
    "use crate::validate::*;",
    "use crate::Sensitive;",
    "",
]

for name in sorted(S):
    s = S[name]
    if s["type"] == "structure":
        if s.get("exception"):
            continue
        if s.get("document"):
            # A document (free JSON, such as managed login branding settings) is kept
            # whole: an empty struct would drop every member on the way through.
            lines.append("#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]")
            lines.append("#[serde(transparent)]")
            lines.append(f"pub struct {name}(pub serde_json::Value);")
            lines.append(f"impl Validate for {name} {{")
            lines.append("    fn validate_at(&self, path: &str, errs: &mut Vec<String>) {}")
            lines.append("}")
            lines.append("")
            continue
        req = set(s.get("required", []))
        lines.append("#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]")
        lines.append(f"pub struct {name} {{")
        for mname, m in s["members"].items():
            ty = rtype(m["shape"])
            f = snake(mname)
            if mname in req:
                lines.append(f"    #[serde(rename = \"{mname}\")]")
                lines.append(f"    pub {f}: {ty},")
            else:
                lines.append(f"    #[serde(rename = \"{mname}\", default, skip_serializing_if = \"Option::is_none\")]")
                lines.append(f"    pub {f}: Option<{ty}>,")
        lines.append("}")
        lines.append(f"impl Validate for {name} {{")
        lines.append("    fn validate_at(&self, path: &str, errs: &mut Vec<String>) {")
        for mname, m in s["members"].items():
            f = snake(mname)
            p = f"member_path(path, \"{lower_camel(mname)}\")"
            if mname in req:
                c = checks(m["shape"], f"(&self.{f})", p)
                lines += ["        " + l for l in c]
            else:
                c = checks(m["shape"], "v", p)
                if c:
                    lines.append(f"        if let Some(v) = &self.{f} {{")
                    lines += ["            " + l for l in c]
                    lines.append("        }")
        lines.append("    }")
        lines.append("}")
        lines.append("")
    elif is_enum(s):
        lines.append("#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]")
        lines.append(f"pub enum {name} {{")
        seen = set()
        vs = []
        for i, v in enumerate(s["enum"]):
            vn = variant(v)
            while vn in seen:
                vn += "X"
            seen.add(vn)
            vs.append((vn, v))
            if i == 0:
                lines.append("    #[default]")
            lines.append(f"    #[serde(rename = \"{v}\")]")
            lines.append(f"    {vn},")
        lines.append("}")
        lines.append(f"impl {name} {{")
        lines.append("    pub fn as_str(&self) -> &'static str {")
        lines.append("        match self {")
        for vn, v in vs:
            lines.append(f"            Self::{vn} => \"{v}\",")
        lines.append("        }")
        lines.append("    }")
        lines.append("}")
        lines.append("")

ops = sorted(OPS)
lines.append("/// Every operation of the service, in the `X-Amz-Target` spelling.")
lines.append("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]")
lines.append("pub enum Operation {")
for o in ops:
    lines.append(f"    {o},")
lines.append("}")
lines.append("impl Operation {")
lines.append("    pub const ALL: &'static [Operation] = &[" + ", ".join("Operation::" + o for o in ops) + "];")
lines.append("    pub fn name(&self) -> &'static str {")
lines.append("        match self {")
for o in ops:
    lines.append(f"            Self::{o} => \"{o}\",")
lines.append("        }")
lines.append("    }")
lines.append("    pub fn from_name(name: &str) -> Option<Self> {")
lines.append("        match name {")
for o in ops:
    lines.append(f"            \"{o}\" => Some(Self::{o}),")
lines.append("            _ => None,")
lines.append("        }")
lines.append("    }")
lines.append("    /// Operations the service model marks as callable without a SigV4 signature.")
lines.append("    pub fn is_unauthenticated(&self) -> bool {")
unauth = [o for o in ops if OPS[o].get("authtype") == "none" or OPS[o].get("auth") == ["smithy.api#noAuth"]]
lines.append("        matches!(self, " + " | ".join("Self::" + o for o in unauth) + ")")
lines.append("    }")
lines.append("    /// Error type names the model lists for this operation.")
lines.append("    pub fn errors(&self) -> &'static [&'static str] {")
lines.append("        match self {")
for o in ops:
    errs = ", ".join('"' + e["shape"] + '"' for e in OPS[o].get("errors", []))
    lines.append(f"            Self::{o} => &[{errs}],")
lines.append("        }")
lines.append("    }")
lines.append("}")
lines.append("")
lines.append("/// Regular expressions of the model's `pattern` constraints, anchored (Java `matches` semantics).")
lines.append("pub const PATTERNS: &[&str] = &[")
for p in patterns:
    lines.append("    " + json.dumps(p) + ",")
lines.append("];")
lines.append("")
lines.append("/// Exception shapes of the model: Cognito's public error vocabulary.")
lines.append("pub const EXCEPTIONS: &[&str] = &[")
for n in sorted(S):
    if S[n].get("exception"):
        lines.append(f"    \"{n}\",")
lines.append("];")

open(out, "w").write("\n".join(lines) + "\n")
print(f"wrote {out}: {len(OPS)} operations, {len(unauth)} unauthenticated, {len(patterns)} patterns")
