// Two users talk through a running gateway. From clients/typescript, after `npm ci && npm run build`:
//
//   GW=../../target/release/chat-gateway          # built by scripts/run.sh
//   ALICE=$($GW token alice) BOB=$($GW token bob) node examples/hello.mjs ws://127.0.0.1:8080/ws
import WebSocket from "ws";
import { ChatClient } from "../dist/index.js";

const url = process.argv[2] ?? "ws://127.0.0.1:8080/ws";
const client = (token, deviceId) => new ChatClient({ url, token, deviceId, WebSocket });
const alice = client(process.env.ALICE, "example-alice");
const bob = client(process.env.BOB, "example-bob");

const got = new Promise((resolve) =>
  bob.on("message", (m) => {
    console.log(`bob got #${m.seq} from ${m.from}: ${m.text}`); // once per messageId, in seq order
    resolve(); // returning acks it
  }),
);
alice.on("delivered", (d) => console.log(`alice: #${d.seq} delivered to ${d.by}`));
await Promise.all([alice.connect(), bob.connect()]);

const stored = await alice.send("bob", "hello from the SDK"); // resolves on reply 0 (stored)
console.log("alice: stored as", stored);
await got;
await new Promise((r) => setTimeout(r, 200)); // let the DELIVERED receipt arrive
alice.close();
bob.close();
