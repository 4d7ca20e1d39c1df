// Installs the built overtone package into the test apps from its `npm pack` tarball, exactly
// as a user would, and builds each app with Vite (in parallel: one process per build), and the
// listen app with webpack too.
// Run after `build_package` and `npm ci` here; scripts/test does both.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const apps = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(apps, '../../pkg-js');

const tarball = execFileSync('npm', ['pack', '--silent'], { cwd: pkg, encoding: 'utf8' }).trim().split('\n').pop();
// --no-save: the tarball changes with every build, the committed lockfile must not.
execFileSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--loglevel=error', path.join(pkg, tarball)], {
  cwd: apps,
  stdio: 'inherit',
});

/** `ECHO` picks whose Echo class the app runs on (see each vite.config.js). */
const builds = [
  ['listen', 'overtone'],
  ['features', 'fake'],
  ['plain', 'laravel-echo'],
  ['plain', 'overtone'],
  ['react', 'laravel-echo'],
  ['react', 'overtone'],
  ['vue', 'laravel-echo'],
  ['vue', 'overtone'],
  ['migration', 'laravel-echo'],
  ['migration', 'overtone'],
];
const vite = path.join(apps, 'node_modules/vite/bin/vite.js');
const build = ([app, echo]) =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [vite, 'build', app], { cwd: apps, env: { ...process.env, ECHO: echo }, stdio: 'inherit' });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`vite build ${app} (ECHO=${echo}) exited with ${code}`))));
  });
// Two at a time: the machines have two cores.
for (let i = 0; i < builds.length; i += 2) await Promise.all(builds.slice(i, i + 2).map(build));

const { default: webpack } = await import('webpack');
const { default: webpackConfig } = await import('./listen/webpack.config.js');
await new Promise((resolve, reject) =>
  webpack(webpackConfig, (err, stats) => (err || stats.hasErrors() ? reject(err ?? new Error(stats.toString('errors-only'))) : resolve())),
);
copyFileSync(path.join(apps, 'listen/index.html'), path.join(webpackConfig.output.path, 'index.html'));
