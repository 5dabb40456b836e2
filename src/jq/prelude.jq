# jq 1.8's builtins that jaq lacks, and jq's behaviour where jaq's differs.
# Compiled after jaq's standard library (and before the user's expression):
# a definition here shadows jaq's for the expression, while jaq's own
# definitions keep the ones they were written with. The natives behind some
# of these are in src/jq/builtins.rs. A `_jaq_NAME` alias keeps jaq's NAME
# reachable once NAME is redefined below.

def _jaq_limit($n; f): limit($n; f);
def _jaq_skip($n; f): skip($n; f);
def _jaq_trim: trim;
def _jaq_ltrim: ltrim;
def _jaq_rtrim: rtrim;
def _jaq_ltrimstr($x): ltrimstr($x);
def _jaq_rtrimstr($x): rtrimstr($x);
def _jaq_utf8bytelength: utf8bytelength;
def _jaq_implode: implode;
def _jaq_flatten($d): flatten($d);
def _jaq_has($k): has($k);
def _jaq_getpath($p): getpath($p);
def _jaq_bsearch($x): bsearch($x);
def _jaq_mktime: mktime;
def _jaq_strftime($f): strftime($f);
def _jaq_strflocaltime($f): strflocaltime($f);

# jq's messages name a value as `TYPE (VALUE)`, the value cut at 28 bytes.
def _jq_show: type + " (" + (tojson | if length > 28 then .[:25] + "..." end) + ")";

def have_decnum: false;
def have_literal_numbers: true;
def tonumber: _tonumber;
def toarray: if type == "array" then . else [.] end;

# Generators
def limit($n; f):
  if $n > 0 then _jaq_limit($n; f)
  elif $n == 0 then empty
  else error("limit doesn't support negative count") end;
def skip($n; f):
  if $n >= 0 then _jaq_skip($n; f)
  else error("skip doesn't support negative count") end;
def nth($n; f):
  if $n < 0 then error("nth doesn't support negative indices")
  else first(skip($n; f)) end;

# Paths
def _jq_depth($p): if ($p | type) == "array" and ($p | length) > 10000 then error("Path too deep") end;
def getpath($p): _jq_depth($p) as $_ | _jaq_getpath($p);
def setpath($p; $x): _jq_depth($p) as $_ | [., $p, $x] | _setpath;
def delpaths($ps):
  if $ps | type == "array" and any(.[]; type == "array" and length > 10000)
  then error("Path too deep") else [., $ps] | _delpaths end;
def del(f): delpaths([path(f)]);
def pick(pathexps):
  . as $top | reduce path(pathexps) as $p (null; setpath($p; $top | getpath($p)));
def leaf_paths: paths(scalars);
def tostream: path(def r: (.[]? | r), .; r) as $p | getpath($p) | reduce path(.[]?) as $q ([$p, .]; [$p + $q]);
def fromstream(f): { x: null, e: false } as $init
  | foreach f as $i ($init;
      if .e then $init end
      | if $i | length == 2
        then setpath(["e"]; $i[0] | length == 0) | setpath(["x"] + $i[0]; $i[1])
        else setpath(["e"]; $i[0] | length == 1) end;
      if .e then .x else empty end);
def truncate_stream(stream): . as $n | null | stream | . as $input
  | if (.[0] | length) > $n then setpath([0]; .[0][$n:]) else empty end;

# SQL-ish
def IN(s): any(s == .; .);
def IN(src; s): any(src == s; .);
def INDEX(stream; idx_expr): reduce stream as $row ({}; .[$row | idx_expr | tostring] |= $row);
def INDEX(idx_expr): INDEX(.[]; idx_expr);
def JOIN($idx; idx_expr): [.[] | [., $idx[idx_expr]]];
def JOIN($idx; stream; idx_expr): stream | [., $idx[idx_expr]];
def JOIN($idx; stream; idx_expr; join_expr): stream | [., $idx[idx_expr]] | join_expr;

# Objects
def to_entries: [keys_unsorted[] as $k | {key: $k, value: .[$k]}];
def from_entries: reduce .[] as $x ({};
  . + { ($x | if .key == null then .k // .name // .Name // .K // .Key else .key end
            | if type == "string" then . else tojson end):
        ($x | if has("value") then .value elif has("v") then .v else .Value end) });
def with_entries(f): to_entries | map(f) | from_entries;
def has($k): if $k | type == "number" and isnan then false else _jaq_has($k) end;

# Strings
def trim: if type == "string" then _jaq_trim else error("trim input must be a string") end;
def ltrim: if type == "string" then _jaq_ltrim else error("trim input must be a string") end;
def rtrim: if type == "string" then _jaq_rtrim else error("trim input must be a string") end;
def ltrimstr($x):
  if type == "string" and ($x | type) == "string" then _jaq_ltrimstr($x)
  else error("startswith() requires string inputs") end;
def rtrimstr($x):
  if type == "string" and ($x | type) == "string" then _jaq_rtrimstr($x)
  else error("endswith() requires string inputs") end;
def trimstr($x): ltrimstr($x) | rtrimstr($x);
def toboolean:
  if type == "boolean" then .
  elif . == "true" then true
  elif . == "false" then false
  else error(_jq_show + " cannot be parsed as a boolean") end;
def utf8bytelength:
  if type == "string" then _jaq_utf8bytelength
  else error(_jq_show + " only strings have UTF-8 byte length") end;
def _strindices($i):
  if type != "string" then error(_jq_show + " cannot be searched, as it is not a string")
  elif ($i | type) != "string" then error($i | _jq_show + " is not a string")
  else indices($i) end;
def join($x): reduce .[] as $i (null;
    (if . == null then "" else . + $x end) as $acc
  | ($i | if . == null then "" elif type == "boolean" or type == "number" then tojson else . end) as $s
  | if ($s | type) == "string" then $acc + $s
    else error(($acc | _jq_show) + " and " + ($s | _jq_show) + " cannot be added") end) // "";
def ascii: [.] | implode;
def implode:
  if type != "array" then error("implode input must be an array")
  else map(
      if type != "number" then error(_jq_show + " can't be imploded, unicode codepoint needs to be numeric")
      else (if . < 0 then ceil else floor end) | if . < 0 or . > 1114111 or (. >= 55296 and . <= 57343) then 65533 end end)
    | _jaq_implode end;
def @csv:
  if type != "array" then error(_jq_show + " cannot be csv-formatted, only an array can be")
  else map(
      if type == "number" then tojson
      elif type == "string" then "\"" + (split("\"") | join("\"\"")) + "\""
      elif type == "boolean" then tojson
      elif . == null then ""
      else error(_jq_show + " is not valid in a csv row") end)
    | join(",") end;
def @tsv:
  if type != "array" then error(_jq_show + " cannot be tsv-formatted, only an array can be")
  else map(
      if type == "string" then split("\\") | join("\\\\") | split("\t") | join("\\t")
        | split("\n") | join("\\n") | split("\r") | join("\\r")
      elif type == "number" or type == "boolean" then tojson
      elif . == null then ""
      else error(_jq_show + " is not valid in a tsv row") end)
    | join("\t") end;

# Arrays
def flatten($d):
  if $d < 0 then error("flatten depth must not be negative") else _jaq_flatten($d) end;
def bsearch($x):
  if type == "array" then _jaq_bsearch($x)
  else error(_jq_show + " cannot be searched from") end;

# Numbers
def abs: if type == "number" and . < 0 then -. end;

# Dates: jq pads a short broken-down time with zeros.
def _jq_tm($name):
  if type == "array" and length >= 6 and (.[0] | type) == "number" then .
  elif type == "array" and length >= 1 and all(.[]; type == "number")
  then . + [range(8 - length) | 0] | .[:8]
  else error($name + " requires parsed datetime inputs") end;
def mktime: if isarray and length >= 6 and (.[0] | isnumber) then _jaq_mktime else _jq_tm("mktime") | _jaq_mktime end;
def strftime($f):
  if ($f | isstring) and (isnumber or isarray and length >= 6 and (.[0] | isnumber)) then _jaq_strftime($f)
  elif ($f | type) != "string" then error("strftime/1 requires a string format")
  elif type == "number" then _jaq_strftime($f)
  else _jq_tm("strftime/1") | _jaq_strftime($f) end;
def strflocaltime($f):
  if ($f | isstring) and (isnumber or isarray and length >= 6 and (.[0] | isnumber)) then _jaq_strflocaltime($f)
  elif ($f | type) != "string" then error("strflocaltime/1 requires a string format")
  elif type == "number" then _jaq_strflocaltime($f)
  else _jq_tm("strflocaltime/1") | _jaq_strflocaltime($f) end;

