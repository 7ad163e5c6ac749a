// Builds a single browser script exposing `window.JsSIP` from the CommonJS
// sources in node_modules/jssip/lib (the npm package ships no dist/ build).
// A tiny module walker: follows require('...') calls from lib/JsSIP.js,
// honours package.json "browser"/"main", wraps each file in a function.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = path.join(here, 'node_modules');

function resolveFile(p) {
  for (const c of [p, p + '.js', p + '.json', path.join(p, 'index.js')]) {
    if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
  }
  throw new Error(`bundle: cannot resolve ${p}`);
}

function resolvePackage(name) {
  const dir = path.join(nodeModules, name);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const entry = typeof pkg.browser === 'string' ? pkg.browser : pkg.main || 'index.js';
  return resolveFile(path.join(dir, entry));
}

function resolve(spec, fromFile) {
  if (spec.startsWith('./') || spec.startsWith('../')) {
    return resolveFile(path.resolve(path.dirname(fromFile), spec));
  }
  return resolvePackage(spec);
}

export function bundleJsSIP() {
  const entry = path.join(nodeModules, 'jssip', 'lib', 'JsSIP.js');
  const ids = new Map(); // absolute file -> numeric id
  const parts = [];
  const queue = [entry];
  ids.set(entry, 0);
  while (queue.length) {
    const file = queue.shift();
    const id = ids.get(file);
    let src = fs.readFileSync(file, 'utf8');
    if (file.endsWith('.json')) {
      parts.push(`${id}: function (module) { module.exports = ${src.trim()}; }`);
      continue;
    }
    const map = {};
    src.replace(/require\(\s*['"]([^'"]+)['"]\s*\)/g, (m, spec) => {
      const target = resolve(spec, file);
      if (!ids.has(target)) {
        ids.set(target, ids.size);
        queue.push(target);
      }
      map[spec] = ids.get(target);
      return m;
    });
    parts.push(
      `${id}: [function (module, exports, require) {\n${src}\n}, ${JSON.stringify(map)}]`,
    );
  }
  return `/* JsSIP ${createRequire(import.meta.url)('jssip/package.json').version}, bundled by tests/browser/bundle.mjs */
(function () {
  var process = { env: {} };
  var defs = {${parts.join(',\n')}};
  var cache = {};
  function load(id) {
    if (cache[id]) return cache[id].exports;
    var module = (cache[id] = { exports: {} });
    var def = defs[id];
    if (typeof def === 'function') { def(module); return module.exports; }
    def[0].call(module.exports, module, module.exports, function (spec) {
      if (!(spec in def[1])) throw new Error('bundle: unknown require ' + spec);
      return load(def[1][spec]);
    });
    return module.exports;
  }
  window.JsSIP = load(0);
})();
`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.stdout.write(bundleJsSIP());
}
