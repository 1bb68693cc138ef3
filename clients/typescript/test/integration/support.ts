// Real servers for the integration tests: `chat-gateway serve` processes (embedded mode), the
// `sdk-harness` cluster (Redis, PostgreSQL, the Pulsar test broker and N pods, from the Rust
// test support), a TCP load balancer / fault proxy in front of them, and HS256 tokens.
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { ChatClient, type ChatClientOptions } from "../../src/index.js";
import type { ChatMessage } from "../../src/message.js";

const repo = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../../..");
/** The harness pods' secret (tests/src/fixtures.rs `SECRET`); embedded gateways use it too. */
export const SECRET = "test-secret-0123456789abcdef";

function binary(env: string, name: string, build: string): string {
  const path = process.env[env] ?? join(repo, "target", "debug", name);
  if (!existsSync(path)) throw new Error(`${path} is missing: build it with \`${build}\` (or set ${env})`);
  return path;
}

/** The gateway binary (`GATEWAY_BIN`, default target/debug/chat-gateway). */
export const gatewayBin = () => binary("GATEWAY_BIN", "chat-gateway", "cargo build -p chat-gateway");
/** The cluster harness (`SDK_HARNESS_BIN`, default target/debug/sdk-harness). */
export const harnessBin = () => binary("SDK_HARNESS_BIN", "sdk-harness", "cargo build -p chat-tests --bin sdk-harness");

const b64url = (v: string | Buffer) => Buffer.from(v).toString("base64url");

/** An HS256 user token signed with {@link SECRET}. */
export function token(user: string, ttlSeconds = 3600): string {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub: user, name: user, iat: now, exp: now + ttlSeconds }));
  const sig = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => res(port));
    });
    s.on("error", rej);
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 50 ms until it is true, failing with `what` after `ms`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function ready(admin: string): Promise<boolean> {
  try {
    return (await fetch(`${admin}/readyz`, { signal: AbortSignal.timeout(1000) })).status === 200;
  } catch {
    return false;
  }
}

/** POST /admin/drain on an admin URL. */
export async function drain(admin: string, deadlineSeconds: number): Promise<void> {
  const res = await fetch(`${admin}/admin/drain`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ deadlineSeconds }) });
  if (res.status !== 202 && res.status !== 200) throw new Error(`drain: HTTP ${res.status} ${await res.text()}`);
}

/** One embedded `chat-gateway serve` (SQLite in a temp dir) that can be SIGKILLed and restarted. */
export class Gateway {
  child?: ChildProcess;
  readonly dir = mkdtempSync(join(tmpdir(), "sdk-gw-"));
  private constructor(
    readonly port: number,
    readonly adminPort: number,
    private readonly extra: string[],
  ) {}

  static async start(extra: string[] = []): Promise<Gateway> {
    const g = new Gateway(await freePort(), await freePort(), extra);
    await g.spawn();
    return g;
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }
  get url(): string {
    return `ws://${this.addr}/ws`;
  }
  get admin(): string {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  async spawn(): Promise<void> {
    const args = ["serve", "--listen", this.addr, "--admin-listen", `127.0.0.1:${this.adminPort}`, "--data-dir", this.dir, "--jwt-secret", SECRET, ...this.extra];
    const child = spawn(gatewayBin(), args, { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } });
    this.child = child;
    await waitFor(`gateway on ${this.addr}`, async () => {
      if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}`);
      return ready(this.admin);
    });
  }

  /** SIGKILL: no drain, no flush. */
  async kill9(): Promise<void> {
    const child = this.child!;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await gone;
  }

  async stop(): Promise<void> {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A target the balancer may send connections to. */
export interface Backend {
  addr: string;
  admin: string;
}

/**
 * A TCP load balancer in front of gateways: new connections go round-robin to backends whose
 * `/readyz` answered 200 at the last poll (like a Service), and {@link Balancer.cut} drops every
 * open connection at once (a network fault).
 */
export class Balancer {
  private readonly server = net.createServer((c) => this.accept(c));
  private readonly open = new Set<net.Socket>();
  private healthy: Backend[] = [];
  private next = 0;
  private poller?: ReturnType<typeof setInterval>;
  cuts = 0;
  port = 0;

  constructor(private readonly backends: () => Backend[] | Promise<Backend[]>) {}

  async start(): Promise<this> {
    await this.poll();
    this.poller = setInterval(() => void this.poll(), 100);
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  private async poll(): Promise<void> {
    const all = await this.backends();
    const ok = await Promise.all(all.map((b) => ready(b.admin)));
    this.healthy = all.filter((_, i) => ok[i]);
  }

  private accept(client: net.Socket): void {
    const target = this.healthy.length ? this.healthy[this.next++ % this.healthy.length] : undefined;
    if (!target) {
      client.destroy();
      return;
    }
    const [host, port] = target.addr.split(":");
    const upstream = net.connect(Number(port), host);
    const pair = [client, upstream];
    for (const s of pair) {
      this.open.add(s);
      s.on("error", () => pair.forEach((x) => x.destroy()));
      s.on("close", () => {
        this.open.delete(s);
        pair.forEach((x) => x.destroy());
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Drops every connection through the balancer (both sides see a reset). */
  cut(): number {
    const n = this.open.size / 2;
    for (const s of this.open) s.destroy();
    this.cuts++;
    return n;
  }

  async stop(): Promise<void> {
    clearInterval(this.poller);
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}

/** A pod as the harness describes it. */
export interface Pod {
  name: string;
  ws: string;
  admin: string;
}

/** The `sdk-harness` process: backends plus N gateway pods in cluster mode. */
export class Harness {
  private constructor(
    private readonly child: ChildProcess,
    readonly control: string,
    public pods: (Pod | null)[],
  ) {}

  static async start(n: number, extra: string[] = []): Promise<Harness> {
    const child = spawn(harnessBin(), [gatewayBin(), String(n), ...extra], { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "error" } });
    const line = await new Promise<string>((res, rej) => {
      const rl = createInterface({ input: child.stdout! });
      rl.once("line", res);
      child.once("exit", (code) => rej(new Error(`sdk-harness exited with ${code} before it was ready`)));
    });
    const first = JSON.parse(line);
    return new Harness(child, first.control, first.pods);
  }

  backends(): Backend[] {
    return this.pods.filter((p): p is Pod => !!p).map((p) => ({ addr: new URL(p.ws).host, admin: p.admin }));
  }

  private async post(path: string): Promise<any> {
    const res = await fetch(`${this.control}${path}`, { method: "POST" });
    if (!res.ok) throw new Error(`harness ${path}: HTTP ${res.status}`);
    return res.json();
  }

  async kill(i: number): Promise<void> {
    this.pods = await this.post(`/pods/${i}/kill`);
  }

  async restart(i: number): Promise<void> {
    this.pods[i] = await this.post(`/pods/${i}/restart`);
  }

  async stop(): Promise<void> {
    const gone = new Promise((r) => this.child.once("exit", r));
    this.child.stdin!.end();
    await gone;
  }
}

/** A client plus what its app saw: every message handed to `on("message")`, in order. */
export interface Device {
  client: ChatClient;
  seen: ChatMessage[];
}

/** A `ChatClient` for `user` on `url` using the `ws` package, recording its messages. */
export function device(url: string, user: string, deviceId: string, extra: Partial<ChatClientOptions> = {}): Device {
  const client = new ChatClient({
    url,
    getToken: () => token(user),
    deviceId,
    WebSocket: WebSocket as any,
    backoff: { baseMs: 100, maxMs: 2000 },
    requestTimeoutMs: 5000,
    ...extra,
  });
  const seen: ChatMessage[] = [];
  client.on("message", (m) => void seen.push(m));
  return { client, seen };
}

/**
 * Asserts the app saw, per conversation, exactly the texts `expected` in this order, each once
 * (by messageId) and with strictly increasing seqs.
 */
export function checkExactlyOnceInOrder(seen: ChatMessage[], expected: string[], cid: string): string | null {
  const mine = seen.filter((m) => m.conversationId === cid && !m.system);
  const ids = new Set(mine.map((m) => m.messageId));
  if (ids.size !== mine.length) return `duplicates: ${mine.length - ids.size}`;
  for (let i = 1; i < mine.length; i++) if (mine[i].seq <= mine[i - 1].seq) return `out of order at ${i}: ${mine[i - 1].seq} then ${mine[i].seq}`;
  const texts = mine.map((m) => m.text);
  if (texts.length !== expected.length || texts.some((t, i) => t !== expected[i])) {
    const missing = expected.filter((t) => !texts.includes(t));
    return `saw ${texts.length} of ${expected.length}; missing ${missing.slice(0, 5).join(", ")}…`;
  }
  return null;
}
