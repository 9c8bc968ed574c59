// The browser client as a web developer installs it: `npm pack` of
// clients/js gives a package with exactly its files; installed into an
// empty project (offline: it has no dependencies), Node loads it as an ES
// module by name, from an .mjs file and from a CommonJS one; its TypeScript
// declarations check a typed page (js_package/example.ts) with
// `tsc --noEmit`, and reject a wrong one (js_package/wrong.ts), so the check
// can fail.

import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import {
  HERE, SRCDIR, check, eq, prerequisiteMissing, run, tempDir,
} from './myxidtest.mjs';

const CLIENT = path.join(SRCDIR, 'clients', 'js');
const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
if (npm.status !== 0) prerequisiteMissing('npm (apt-get install npm)');

function findTsc() {
  const roots = [HERE, process.env.MYXID_NODE_MODULES && path.dirname(process.env.MYXID_NODE_MODULES)];
  for (const root of roots.filter(Boolean)) {
    try {
      return createRequire(path.join(root, 'x.js')).resolve('typescript/bin/tsc');
    } catch (e) { /* next */ }
  }
  return null;
}
const tsc = findTsc();
if (!tsc) prerequisiteMissing('Node package typescript (npm ci in tests/integration)');

const sh = (cmd, args, cwd) => spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });

async function main() {
  const work = tempDir('myxidtest-jspkg-');
  // Pack a copy: a distcheck source tree is read-only.
  const src = path.join(work, 'src');
  fs.cpSync(CLIENT, src, { recursive: true, filter: (f) => !/myxid\.classic\.js$/.test(f) });
  const pack = sh('npm', ['pack', '--json', '--pack-destination', work], src);
  check(pack.status === 0, 'npm pack succeeds', pack.stderr);
  const info = JSON.parse(pack.stdout || '[{}]')[0];
  const pkg = JSON.parse(fs.readFileSync(path.join(CLIENT, 'package.json'), 'utf8'));
  eq([info.name, info.version], [pkg.name, pkg.version], 'the tarball is the package of package.json');
  eq((info.files || []).map((f) => f.path).sort(), ['README.md', 'myxid.d.ts', 'myxid.js', 'package.json'],
    'the tarball holds exactly the client, its declarations, its README and package.json');
  eq([pkg.type, pkg.exports['.'].import, pkg.exports['.'].types], ['module', './myxid.js', './myxid.d.ts'],
    'package.json: "type": "module", exports with import and types');

  // An empty project installs it (no registry needed: no dependencies).
  const app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  const inst = sh('npm', ['install', '--offline', '--no-audit', '--no-fund', path.join(work, info.filename)], app);
  check(inst.status === 0, 'npm install of the tarball into an empty project', inst.stderr);

  // Node loads it by name as ESM: from an ES module and from CommonJS.
  fs.writeFileSync(path.join(app, 'esm.mjs'), [
    "import Myxi, { Connection, Subscription, MyxiError, CloseCodes } from 'myxid-client';",
    'console.log(JSON.stringify([typeof Myxi.Connection, Myxi.Connection === Connection,',
    '  Myxi.Subscription === Subscription, typeof MyxiError, CloseCodes.SLOW_CONSUMER,',
    "  Subscription.keyFor('deployment', 'd1'), Myxi.version]));",
  ].join('\n'));
  fs.writeFileSync(path.join(app, 'cjs.cjs'),
    "import('myxid-client').then((m) => console.log(JSON.stringify([typeof m.Connection, m.default === m.Myxi])));\n");
  const esm = sh(process.execPath, ['esm.mjs'], app);
  eq(esm.status === 0 && JSON.parse(esm.stdout),
    ['function', true, true, 'function', 4008, 'deployment::d1', pkg.version],
    `Node ${process.version} imports myxid-client as an ES module`);
  if (esm.status !== 0) console.log(`# ${esm.stderr}`);
  const cjs = sh(process.execPath, ['cjs.cjs'], app);
  eq(cjs.status === 0 && JSON.parse(cjs.stdout), ['function', true],
    'a CommonJS file loads it with import()');
  if (cjs.status !== 0) console.log(`# ${cjs.stderr}`);

  // The declarations: a typed page checks; a wrong one does not.
  for (const f of ['example.ts', 'wrong.ts']) fs.copyFileSync(path.join(HERE, 'js_package', f), path.join(app, f));
  const tsconfig = (file) => JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, module: 'node16', moduleResolution: 'node16', target: 'es2020',
      lib: ['es2020', 'dom'], skipLibCheck: false, types: [],
    },
    files: [file],
  });
  fs.writeFileSync(path.join(app, 'tsconfig.json'), tsconfig('example.ts'));
  const good = sh(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json'], app);
  check(good.status === 0, 'tsc --noEmit: the typed example checks against myxid.d.ts', good.stdout + good.stderr);
  fs.writeFileSync(path.join(app, 'tsconfig.json'), tsconfig('wrong.ts'));
  const bad = sh(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json'], app);
  const errors = (bad.stdout.match(/error TS\d+/g) || []).length;
  check(bad.status !== 0 && errors === 2,
    'tsc rejects the wrong example (on() returns a number; `this` in a subscription callback is the subscription)',
    bad.stdout);
  const version = execFileSync(process.execPath, [tsc, '--version'], { encoding: 'utf8' }).trim();
  console.log(`# ${version}, Node ${process.version}`);
}

run(main, 120000);
