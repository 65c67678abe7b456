# msgpack-body.jq - decodes an event body (msgpack, given as lowercase hex)
# with jq alone, for scripts/audit-export.sh: nil, booleans, integers of
# every width, strings (UTF-8), arrays and maps: everything marketd writes in
# a body (docs/events.md). Floats and binary are refused: a body never has
# them. Input: one line "HEX<TAB>READABLE-JSON"; output: "ok" or why not.

def hexval: if . >= 97 then . - 87 elif . >= 65 then . - 55 else . - 48 end;
def bytes: explode | [range(0; length; 2) as $i | (.[$i] | hexval) * 16 + (.[$i + 1] | hexval)];
def be($b; $p; $n): reduce range($p; $p + $n) as $i (0; . * 256 + $b[$i]);
def signed($v; $bits): if $v >= pow(2; $bits - 1) then $v - pow(2; $bits) else $v end;
def utf8($b; $s; $e):
  {i: $s, cp: []}
  | until(.i >= $e;
      $b[.i] as $c
      | if $c < 128 then .cp += [$c] | .i += 1
        elif $c >= 240 then .cp += [($c % 8) * 262144 + ($b[.i + 1] % 64) * 4096
                                    + ($b[.i + 2] % 64) * 64 + $b[.i + 3] % 64] | .i += 4
        elif $c >= 224 then .cp += [($c % 16) * 4096 + ($b[.i + 1] % 64) * 64
                                    + $b[.i + 2] % 64] | .i += 3
        else .cp += [($c % 32) * 64 + $b[.i + 1] % 64] | .i += 2 end)
  | .cp | implode;

# [value, next position] of the msgpack value at $p
def dec($b; $p):
  def str($s; $n): [utf8($b; $s; $s + $n), $s + $n];
  def arr($s; $n):
    reduce range($n) as $k ([[], $s]; dec($b; .[1]) as $v | [.[0] + [$v[0]], $v[1]]);
  def map($s; $n):
    reduce range($n) as $k ([{}, $s];
      dec($b; .[1]) as $key | dec($b; $key[1]) as $v | [.[0] + {($key[0]): $v[0]}, $v[1]]);
  $b[$p] as $t
  | if $t == null then error("body ends early")
    elif $t < 128 then [$t, $p + 1]
    elif $t >= 224 then [$t - 256, $p + 1]
    elif $t < 144 then map($p + 1; $t - 128)
    elif $t < 160 then arr($p + 1; $t - 144)
    elif $t < 192 then str($p + 1; $t - 160)
    elif $t == 192 then [null, $p + 1]
    elif $t == 194 then [false, $p + 1]
    elif $t == 195 then [true, $p + 1]
    elif $t == 204 then [be($b; $p + 1; 1), $p + 2]
    elif $t == 205 then [be($b; $p + 1; 2), $p + 3]
    elif $t == 206 then [be($b; $p + 1; 4), $p + 5]
    elif $t == 207 then [be($b; $p + 1; 8), $p + 9]
    elif $t == 208 then [signed(be($b; $p + 1; 1); 8), $p + 2]
    elif $t == 209 then [signed(be($b; $p + 1; 2); 16), $p + 3]
    elif $t == 210 then [signed(be($b; $p + 1; 4); 32), $p + 5]
    elif $t == 211 then [signed(be($b; $p + 1; 8); 64), $p + 9]
    elif $t == 217 then str($p + 2; be($b; $p + 1; 1))
    elif $t == 218 then str($p + 3; be($b; $p + 1; 2))
    elif $t == 219 then str($p + 5; be($b; $p + 1; 4))
    elif $t == 220 then arr($p + 3; be($b; $p + 1; 2))
    elif $t == 221 then arr($p + 5; be($b; $p + 1; 4))
    elif $t == 222 then map($p + 3; be($b; $p + 1; 2))
    elif $t == 223 then map($p + 5; be($b; $p + 1; 4))
    else error("msgpack type byte \($t) is not used in a body") end;

def keys_in_order: ["seq", "stream", "version", "type", "recorded_at", "command_id", "actor", "data"];

split("\t") as [$hex, $line]
| ($line | fromjson) as $readable
| ($hex | bytes) as $b
| (try dec($b; 0) catch ["undecodable: \(.)", -1]) as $d
| if $d[1] == -1 then "seq \($readable.seq): body \($d[0])"
  elif $d[1] != ($b | length) then "seq \($readable.seq): bytes after the body"
  elif ($d[0] | type) != "object" or ($d[0] | keys_unsorted) != keys_in_order
  then "seq \($readable.seq): body keys are not \(keys_in_order | join(","))"
  elif ($readable | del(.body, .prev_hash, .hash)) != $d[0]
  then ($d[0] | to_entries | map(select(.value != $readable[.key]) | .key)) as $diff
       | "seq \($readable.seq): readable field \(if $diff == [] then "?" else $diff | join(",") end) differs from the hashed body"
  else "ok" end
