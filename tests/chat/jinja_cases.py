# Reference outputs for jinja_engine_test.cpp: renders small templates that
# exercise one jinja2 feature each with jinja2 configured as transformers does
# and prints them as JSON. Regenerate with:
#   /usr/bin/python3 tests/chat/jinja_cases.py > tests/chat/jinja_cases.json
import json
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters['tojson'] = tojson
cases = [
 ("{{ 1.0 }}|{{ 2.5e-7 }}|{{ 1e16 }}|{{ 7 / 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}", {}),
 ("{{ none }}|{{ true }}|{{ [1, 'a', none, {'k': 'it\\'s'}] }}|{{ ('x',) }}|{{ x }}|", {}),
 ("  {% if true %}\n    yes\n  {% endif %}\nend\n", {}),
 ("a  {%- if true -%}  b  {%- endif %}  c\n", {}),
 ("{# comment #}\n  {# c2 #}\nx {{ 'y' }}\n\n", {}),
 ("{% for x in xs %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% else %}empty{% endfor %}", {"xs": ["a","b","c"]}),
 ("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {"xs": []}),
 ("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% if x == 3 %}{% break %}{% endif %}{% endfor %}", {"xs": [1,2,3,4]}),
 ("{% set ns = namespace(n=0, s='') %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}", {"xs": [1,2,3]}),
 ("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }}", {}),
 ("{{ ' a b '|trim }}|{{ 'abc'|upper }}|{{ 'ABC'|lower }}|{{ [1,2,3]|length }}|{{ 'héllo'|length }}|{{ [1,2]|join(', ') }}|{{ x|default('d') }}|{{ [3,4]|first }}|{{ [3,4]|last }}", {}),
 ("{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ 'é\"\\n'|tojson }}|{{ [1.0, true, none]|tojson }}", {"d": {"b": 1, "a": [1, {"x": "ü"}], "e": {}, "f": []}}),
 ("{{ 'a,b,c'.split(',') }}|{{ ' x '.strip() }}|{{ 'xxhixx'.lstrip('x') }}|{{ 'hello world'.title() }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x','c')) }}|{{ 'aaa'.replace('a','b') }}", {}),
 ("{{ xs[1:] }}|{{ xs[::-1] }}|{{ xs[-1] }}|{{ 'hello'[1:3] }}|{{ 'héllo'[::-1] }}|{{ xs[-2:] }}", {"xs": [1,2,3,4]}),
 ("{{ x is defined }}|{{ none is none }}|{{ 'a' is string }}|{{ {} is mapping }}|{{ [] is iterable }}|{{ 1 is number }}|{{ 2 in [1,2] }}|{{ 'a' in 'cat' }}|{{ 3 is equalto 3 }}|{{ x is not defined }}", {}),
 ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}{{ d|list }}", {"d": {"z": 1, "a": 2}}),
 ("{{ users|selectattr('active')|map(attribute='name')|join(',') }}|{{ users|rejectattr('active')|map(attribute='name')|list }}|{{ users|selectattr('name', 'equalto', 'b')|list|length }}", {"users": [{"name": "a", "active": True}, {"name": "b", "active": False}]}),
 ("{{ '42'|int + 1 }}|{{ 'x'|int }}|{{ 3.9|int }}|{{ 5|string + 'a' }}|{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(2, true) }}", {}),
 ("{% set x %}inner {{ 1 }}{% endset %}[{{ x }}]{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}),
 ("{{ 'a' if false }}|{{ 'a' if true else 'b' }}|{{ false or 'x' }}|{{ 0 and 1 }}|{{ not 0 }}|{{ 1 ~ 2 ~ none }}", {}),
 ("{% raw %}{{ not parsed }}{% endraw %}|{{ \"\\u00e9\\x41\\t\" }}", {}),
 ("{{ (messages|length) - 1 }}|{{ messages|length - 1 }}|{{ -1|abs }}", {"messages": [1,2,3]}),
 ("{% filter upper %}abc {{ 'd' }}{% endfilter %}|{% for i in range(3) %}{{ i }}{% endfor %}|{{ range(1, 10, 3)|list }}", {}),
 ("{{ m.get('a') }}|{{ m.get('z', 5) }}|{{ m.keys()|list }}|{{ m['a'] }}|{{ m.a }}|{{ m.values()|list }}", {"m": {"a": 1, "b": [2]}}),
 ("{% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}body{% endcall %}", {}),
 ("{{ '%s-%d' % ('a', 3) }}|{{ '{}+{}'.format(1, 'b') }}|{{ [3,1,2]|sort }}|{{ ['b','A','a']|sort }}|{{ [1,1,2]|unique|list }}|{{ [1,2]|sum }}", {}),
 ("{%- for m in messages %}\n  {%- if m.role == 'user' %}\n    {{- 'U:' + m.content }}\n  {%- elif m.role == 'assistant' %}\n    {{- 'A:' + m.content | trim }}\n  {%- endif %}\n{%- endfor %}", {"messages": [{"role":"user","content":"hi"},{"role":"assistant","content":"  yo  "}]}),
 ("x\n  {%+ if true %}y{% endif %}\n  {{ 'z' }}  \n", {}),
 ("{{ '%d|%d|%i|%d' % (1e20, -0.5, 6.5, 66666666666666666666666666666.0) }}", {}),
 ("{{ 1 == 1.0 }}|{{ [1,2] == [1,2] }}|{{ 'a' < 'b' }}|{{ 10 > 9.5 }}|{{ 0.1 + 0.2 }}|{{ 1/3 }}|{{ 100000000000000000000.0 }}|{{ 0.0001 }}|{{ -0.0 }}", {}),
]
out = []
for src, ctx in cases:
    try:
        r = env.from_string(src).render(**ctx)
        out.append({"template": src, "context": ctx, "expected": r})
    except Exception as e:
        out.append({"template": src, "context": ctx, "error": repr(e)})
print(json.dumps(out, ensure_ascii=False, indent=1))
