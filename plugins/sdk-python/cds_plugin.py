"""The Python guest library for cross-domain-sync entity plugins.

The Python twin of the Rust SDK (`plugins/sdk`): a plugin declares its
entity type, version, item schema and which fields hold emails, phones,
addresses and timestamps, and `export` turns that into the WIT interface
`gold:entity/plugin@1.1.0` that `componentize-py` builds into a component.
Everything else is done here the way the Rust SDK and `cds-policy` do it:
renames from and to each domain's field names, the standard normalisation,
and the crossing's policy (withhold, reduce, strip), so that a plugin in
either language gives the same items on the same data. The host re-checks
every result whichever language made it.

A plugin is a module `app.py`:

    import cds_plugin

    class Notes(cds_plugin.EntityPlugin):
        ENTITY_TYPE = "notes"
        VERSION = "1.0.0"
        ITEM_SCHEMA = cds_plugin.schema_file(__file__, "schema.json")
        TIMESTAMP_FIELDS = ("remindAt",)

    Plugin = cds_plugin.export(Notes)

built with
`componentize-py -d wit -w entity-plugin componentize app -p . -p SDK -o notes.wasm`.

Known difference from the Rust SDK: a timestamp that its offset moves
outside the years 1-9999 is an error here.

Numbers: Python's `json` reads `2.50`, `1E+2` and `-0` as values it writes
back as `2.5`, `100.0` and `0`, which would change a user's number on its way
across. An item whose text `json.loads` and `json.dumps` do not give back
exactly is read again with such numbers kept as `RawNumber`s holding their
text, and written back as they were (the Rust SDK keeps every number's text
too). Items as the host sends them rarely need it.
"""

import json
import os
import re
from datetime import datetime, timedelta, timezone

INTERFACE_VERSION = "1.1.0"


class PluginError(Exception):
    """A batch cannot be mapped or filtered; the host reports the message."""


# --- JSON, exactly ---------------------------------------------------------------


class RawNumber:
    """A JSON number kept as written, because a float or int would change it."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"RawNumber({self.text!r})"


def _exact_float(t):
    f = float(t)
    return f if float.__repr__(f) == t else RawNumber(t)


def _exact_int(t):
    try:
        i = int(t)
        return i if str(i) == t else RawNumber(t)
    except ValueError:  # more digits than Python converts (sys.int_max_str_digits)
        return RawNumber(t)


class _HasRaw(Exception):
    pass


def _no_raw(o):
    if isinstance(o, RawNumber):
        raise _HasRaw
    raise TypeError(f"{type(o).__name__} is not JSON")


def _encode(v):
    """Compact JSON, `RawNumber`s as written (the slow path of `dumps`)."""
    if isinstance(v, RawNumber):
        return v.text
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _encode(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_encode(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def dumps(v):
    """Compact and not ASCII-escaped, as the Rust SDK writes items; numbers as read."""
    try:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=_no_raw)
    except _HasRaw:
        return _encode(v)


def loads(s):
    """JSON text to a value that `dumps` writes back as it was."""
    try:
        v = json.loads(s)
        if dumps(v) == s:
            return v
    except ValueError:
        pass  # perhaps an integer of more digits than Python converts: read exactly
    return json.loads(s, parse_float=_exact_float, parse_int=_exact_int)


class EntityPlugin:
    """One entity type's rules. Everything has a default except the identity
    and the schema (see the Rust SDK's `EntityPlugin` for each)."""

    ENTITY_TYPE = None
    VERSION = None
    ITEM_SCHEMA = None
    ID_FIELD = "id"
    EMAIL_FIELDS = ()
    PHONE_FIELDS = ()
    ADDRESS_FIELDS = ()
    # `lastModified` is always normalised.
    TIMESTAMP_FIELDS = ()

    @staticmethod
    def normalize(item):
        """Type-specific normalisation after the standard one (canonical names)."""

    @classmethod
    def filter(cls, policy, item):
        """The policy applied to one item: `(kept item or None, redacted)`."""
        return policy.apply(item, cls.ID_FIELD)


def schema_file(module_file, name):
    """The text of `name` beside `module_file`, read when the module is
    imported. componentize-py imports the app while it builds the component,
    so the schema is read then and baked in; the plugin reads no file when it
    runs (it has none)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(module_file)), name), encoding="utf-8") as f:
        return f.read()


# --- normalisation -----------------------------------------------------------


def normalize_email(s):
    """Lower-cases and trims an email address."""
    return s.strip().lower()


_PHONE_SEPARATORS = frozenset(" -.()/")


def normalize_phone(s):
    """A phone number reduced to a leading `+` and digits, when it is made
    only of digits and the usual separators; anything else is left as
    written (trimmed) rather than guessed at."""
    t = s.strip()
    out = []
    for i, c in enumerate(t):
        if "0" <= c <= "9":
            out.append(c)
        elif c == "+" and i == 0:
            out.append(c)
        elif c in _PHONE_SEPARATORS:
            pass
        else:
            return t
    n = "".join(out)
    return t if not n.lstrip("+") else n


def normalize_address(s):
    """An email (it has an `@`) as `normalize_email`, anything else as a phone."""
    return normalize_email(s) if "@" in s else normalize_phone(s)


_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)


def normalize_timestamp(s):
    """An RFC 3339 timestamp in UTC with a `Z`, fractional seconds written
    with 3, 6 or 9 digits as needed (chrono's `AutoSi`, as the Rust SDK)."""
    m = _RFC3339.match(s.strip())
    if m is None:
        raise PluginError(f"`{s}` is not an RFC 3339 timestamp")
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or ""
    nanos = int((frac + "000000000")[:9])
    off = m.group(8)
    if off in ("Z", "z"):
        delta = timedelta(0)
    else:
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            raise PluginError(f"`{s}` is not an RFC 3339 timestamp (offset out of range)")
        delta = timedelta(hours=oh, minutes=om) * (1 if off[0] == "+" else -1)
    leap = sec == 60
    try:
        t = datetime(y, mo, d, h, mi, 59 if leap else sec, tzinfo=timezone(delta))
        t = t.astimezone(timezone.utc)
    except (ValueError, OverflowError) as e:
        raise PluginError(f"`{s}` is not an RFC 3339 timestamp ({e})") from None
    text = t.strftime("%Y-%m-%dT%H:%M:") + ("60" if leap else f"{t.second:02d}")
    if nanos == 0:
        pass
    elif nanos % 1_000_000 == 0:
        text += f".{nanos // 1_000_000:03d}"
    elif nanos % 1_000 == 0:
        text += f".{nanos // 1_000:06d}"
    else:
        text += f".{nanos:09d}"
    return text + "Z"


def _each_string(item, field, f):
    """Applies `f` to the string, or each string of the array, `item[field]`
    holds, in place."""
    v = item.get(field)
    if isinstance(v, str):
        item[field] = f(v)
    elif isinstance(v, list):
        item[field] = [f(e) if isinstance(e, str) else e for e in v]


def normalize(plugin, item):
    """The standard normalisation `plugin` declares (emails, phones,
    addresses, then timestamps), then its own hook."""
    for field in plugin.EMAIL_FIELDS:
        _each_string(item, field, normalize_email)
    for field in plugin.PHONE_FIELDS:
        _each_string(item, field, normalize_phone)
    for field in plugin.ADDRESS_FIELDS:
        _each_string(item, field, normalize_address)
    for field in ("lastModified", *plugin.TIMESTAMP_FIELDS):

        def stamp(s, field=field):
            try:
                return normalize_timestamp(s)
            except PluginError as e:
                raise PluginError(f"{field}: {e}") from None

        _each_string(item, field, stamp)
    plugin.normalize(item)


def rename_fields(item, table):
    """The keys of `item` renamed by `table` (pairs `(from, to)`), in order."""
    if not table:
        return item
    names = dict(reversed(table))  # the first pair for a name wins, as in Rust
    out = {}
    for k, v in item.items():
        out[names.get(k, k)] = v
    return out


# --- the policy ----------------------------------------------------------------


def _is_number(x):
    return isinstance(x, (int, float, RawNumber)) and not isinstance(x, bool)


def _same(a, b):
    """JSON equality as serde_json has it: `1`, `1.0` and `true` differ, and
    numbers are equal when written alike."""
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and dumps(a) == dumps(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _fields(obj, where, allowed, required):
    if not isinstance(obj, dict):
        raise PluginError(f"the policy is not valid: {where} is not an object")
    extra = set(obj) - set(allowed)
    if extra:
        raise PluginError(f"the policy is not valid: unknown field `{sorted(extra)[0]}` in {where}")
    for r in required:
        if r not in obj:
            raise PluginError(f"the policy is not valid: missing field `{r}` in {where}")


def _strings(v, where):
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise PluginError(f"the policy is not valid: {where} is not a list of strings")
    return list(v)


class Rule:
    """`field`'s value is one of `values` (for an array field: any element is)."""

    def __init__(self, obj, where):
        _fields(obj, where, ("field", "in"), ("field", "in"))
        if not isinstance(obj["field"], str) or not isinstance(obj["in"], list):
            raise PluginError(f"the policy is not valid: {where} needs a string `field` and a list `in`")
        self.field = obj["field"]
        self.values = obj["in"]

    def matches(self, item):
        if self.field not in item:
            return False
        v = item[self.field]
        if isinstance(v, list):
            return any(_same(e, w) for e in v for w in self.values)
        return any(_same(v, w) for w in self.values)


class Policy:
    """The policy of one crossing, as `cds-policy` defines it: withhold, then
    reduce, then strip."""

    def __init__(self, obj):
        _fields(obj, "the policy", ("withhold", "reduce", "strip"), ())
        self.withhold = [Rule(r, f"withhold[{i}]") for i, r in enumerate(obj.get("withhold", []))]
        self.reduce = []
        for i, red in enumerate(obj.get("reduce", [])):
            _fields(red, f"reduce[{i}]", ("when", "keep", "set"), ("when", "keep"))
            sets = red.get("set", {})
            if not isinstance(sets, dict):
                raise PluginError(f"the policy is not valid: reduce[{i}].set is not an object")
            when = [Rule(r, f"reduce[{i}].when[{j}]") for j, r in enumerate(red["when"])]
            self.reduce.append((when, _strings(red["keep"], f"reduce[{i}].keep"), sets))
        self.strip = _strings(obj.get("strip", []), "strip")

    @classmethod
    def parse(cls, text):
        try:
            obj = loads(text)
        except ValueError as e:
            raise PluginError(f"the policy is not valid: {e}") from None
        return cls(obj)

    def apply(self, item, id_field):
        """`(item or None when withheld, fields redacted)`; `item` is changed
        in place."""
        if any(r.matches(item) for r in self.withhold):
            return None, 0
        redacted = 0
        for when, keep, sets in self.reduce:
            if any(r.matches(item) for r in when):
                for k in [k for k in item if k != id_field and k not in keep]:
                    del item[k]
                    redacted += 1
                for k, v in sets.items():
                    if k in item and not _same(item[k], v):
                        redacted += 1
                    item[k] = v
                break
        for field in self.strip:
            if field != id_field and field in item:
                del item[field]
                redacted += 1
        return item, redacted


# --- the batch functions -------------------------------------------------------


def _parse_item(s, i):
    try:
        v = loads(s)
    except ValueError as e:
        raise PluginError(f"item {i} is not valid JSON: {e}") from None
    if not isinstance(v, dict):
        raise PluginError(f"item {i} is not a JSON object")
    return v


def _item_id(plugin, item):
    v = item.get(plugin.ID_FIELD)
    return v if isinstance(v, str) else "?"


def map_item(plugin, to_canonical, to_local, s, i):
    """The `i`th item of a batch, JSON text `s`, in the receiving shape."""
    item = rename_fields(_parse_item(s, i), to_canonical)
    try:
        normalize(plugin, item)
    except PluginError as e:
        raise PluginError(f"item {i} (id {_item_id(plugin, item)}): {e}") from None
    return rename_fields(item, to_local)


def _tables(from_fields, to_fields):
    to_canonical = [(r.local, r.canonical) for r in from_fields]
    to_local = [(r.canonical, r.local) for r in to_fields]
    return to_canonical, to_local


def map_batch(plugin, from_fields, to_fields, items):
    to_canonical, to_local = _tables(from_fields, to_fields)
    return [dumps(map_item(plugin, to_canonical, to_local, s, i)) for i, s in enumerate(items)]


def filter_batch(plugin, policy_text, items):
    """`(kept texts, withheld ids, redacted)`."""
    policy = Policy.parse(policy_text)
    kept, withheld, redacted = [], [], 0
    for i, s in enumerate(items):
        item = _parse_item(s, i)
        ident = _item_id(plugin, item)
        out, n = plugin.filter(policy, item)
        redacted += n
        if out is None:
            withheld.append(ident)
        else:
            kept.append(dumps(out))
    return kept, withheld, redacted


def cross_batch(plugin, from_fields, to_fields, policy_text, items):
    """`[(mapped text or None when unchanged, "kept"|"withheld"|changed text)], redacted`."""
    policy = None if policy_text is None else Policy.parse(policy_text)
    to_canonical, to_local = _tables(from_fields, to_fields)
    out, redacted = [], 0
    for i, s in enumerate(items):
        item = map_item(plugin, to_canonical, to_local, s, i)
        mapped = dumps(item)
        if policy is None:
            outcome = "kept"
        else:
            kept, n = plugin.filter(policy, dict(item))
            redacted += n
            if kept is None:
                outcome = "withheld"
            else:
                text = dumps(kept)
                outcome = "kept" if text == mapped else ("changed", text)
        out.append((None if mapped == s else mapped, outcome))
    return out, redacted


# --- the component's export ----------------------------------------------------


def export(plugin):
    """The class componentize-py exports as `gold:entity/plugin`: bind it to
    the name `Plugin` in the app module. Outside a componentize-py build the
    plugin class itself is returned."""
    for attr in ("ENTITY_TYPE", "VERSION", "ITEM_SCHEMA"):
        if not isinstance(getattr(plugin, attr), str):
            raise TypeError(f"{plugin.__name__}.{attr} must be a string")
    # Imported here: the bindings exist only inside componentize-py's build.
    # Run natively (a plugin's own tests import its app module) there is
    # nothing to export to, and the class comes back as it is.
    try:
        from componentize_py_types import Err
        from wit_world import exports
        from wit_world.exports import plugin as wit
    except ImportError:
        return plugin

    def guarded(f):
        def call(*args):
            try:
                return f(*args)
            except PluginError as e:
                raise Err(str(e)) from None

        return call

    class Exported(exports.Plugin):
        def describe(self):
            return wit.Descriptor(
                entity_type=plugin.ENTITY_TYPE,
                plugin_version=plugin.VERSION,
                interface_version=INTERFACE_VERSION,
                item_schema=plugin.ITEM_SCHEMA,
                id_field=plugin.ID_FIELD,
            )

        @guarded
        def map_batch(self, request):
            return map_batch(plugin, request.from_fields, request.to_fields, request.items)

        @guarded
        def filter_batch(self, request):
            kept, withheld, redacted = filter_batch(plugin, request.policy, request.items)
            return wit.FilterResult(kept=kept, withheld=withheld, redacted_fields=redacted)

        @guarded
        def cross_batch(self, request):
            items, redacted = cross_batch(
                plugin, request.from_fields, request.to_fields, request.policy, request.items
            )
            out = []
            for mapped, outcome in items:
                if outcome == "kept":
                    o = wit.Outcome_Kept()
                elif outcome == "withheld":
                    o = wit.Outcome_Withheld()
                else:
                    o = wit.Outcome_Changed(outcome[1])
                out.append(wit.Crossed(mapped=mapped, outcome=o))
            return wit.CrossResult(items=out, redacted_fields=redacted)

    Exported.__name__ = "Plugin"
    return Exported
