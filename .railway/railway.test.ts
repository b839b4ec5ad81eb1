/**
 * Offline checks of railway.ts (no network, no Railway login): evaluate it the way the CLI does
 * and pin what the deployment promises. Run: `npm --prefix .railway test` (CI: .ci/run).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { validateGraph, type RailwayContext, type ResourceNode, type ServiceNode } from "railway/iac";

import { evaluate, planContext, toGraph } from "./offline.ts";
import {
  DRAINING_SECONDS,
  HEALTHCHECK_PATH,
  HEALTHCHECK_TIMEOUT_S,
  POOL_SERVICE,
  REDIS_SERVICE,
  RESTART_MAX_RETRIES,
  RESTART_POLICY,
  SHUTDOWN_GRACE_MS,
} from "./railway.ts";

const repoFile = (name: string): string => readFileSync(new URL(`../${name}`, import.meta.url), "utf8");

function byAddress(resources: ResourceNode[], address: string): ResourceNode {
  const found = resources.find((resource) => resource.address === address);
  assert.ok(found, `${address} is declared`);
  return found;
}

async function poolService(): Promise<ServiceNode> {
  const { resources } = await evaluate(planContext());
  const pool = byAddress(resources, `service.${POOL_SERVICE}`);
  assert.equal(pool.type, "service");
  return pool as ServiceNode;
}

/** The [deploy] keys of railway.toml (flat `key = value` lines; enough for this file). */
function railwayTomlDeploy(): Record<string, string> {
  const values: Record<string, string> = {};
  let section = "";
  for (const raw of repoFile("railway.toml").split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    const header = /^\[(.+)\]$/.exec(line);
    if (header?.[1] !== undefined) {
      section = header[1];
      continue;
    }
    const pair = /^([A-Za-z]+)\s*=\s*(.+)$/.exec(line);
    if (section === "deploy" && pair?.[1] !== undefined && pair[2] !== undefined) {
      values[pair[1]] = pair[2].replace(/^"(.*)"$/, "$1");
    }
  }
  return values;
}

test("the project is a Redis database and the pool service, and nothing else", async () => {
  const { resources } = await evaluate(planContext());
  assert.deepEqual(resources.map((resource) => resource.address).sort(), [
    `database.${REDIS_SERVICE}`,
    `service.${POOL_SERVICE}`,
  ]);
  const cache = byAddress(resources, `database.${REDIS_SERVICE}`);
  assert.equal(cache.type === "database" ? cache.engine : undefined, "redis");
});

test("the graph is valid: every variable reference points at a declared resource", async () => {
  const graph = toGraph(await evaluate(planContext()));
  assert.deepEqual(validateGraph(graph), []);
  assert.deepEqual(graph.edges, [
    { from: `service.${POOL_SERVICE}`, to: `database.${REDIS_SERVICE}`, type: "variable", key: "REDIS_URL" },
  ]);
});

test("the linked project's name is kept; a context-less evaluation gives the same resources", async () => {
  const linked = await evaluate(planContext("acme"));
  assert.equal(linked.name, "acme");
  // Some CLI versions call the default export with an empty object: the file must not need more.
  const bare = await evaluate({} as RailwayContext);
  assert.equal(bare.name, "ebook-pool");
  assert.deepEqual(bare.resources, linked.resources);
});

test("the pool is built by Railpack and started as `python -m pool`, like the Procfile", async () => {
  const pool = await poolService();
  assert.equal(pool.build?.builder, "RAILPACK");
  assert.equal(pool.deploy?.startCommand, "python -m pool");
  assert.match(repoFile("Procfile"), /^worker: python -m pool$/m);
  const replicas = pool.deploy?.numReplicas;
  assert.ok(typeof replicas === "number" && replicas >= 1, `numReplicas ${replicas}`);
});

test("health check on the pool's /healthz, within Railway's default 300 s window", async () => {
  const pool = await poolService();
  assert.equal(pool.deploy?.healthcheckPath, "/healthz");
  assert.equal(HEALTHCHECK_PATH, "/healthz");
  const timeout = pool.deploy?.healthcheckTimeout;
  assert.ok(typeof timeout === "number" && timeout > 0 && timeout <= 300, `healthcheckTimeout ${timeout}`);
});

test("restart on failure, at most 10 times (the Free plan's limit)", async () => {
  const pool = await poolService();
  assert.equal(pool.deploy?.restartPolicyType, "ON_FAILURE");
  assert.equal(pool.deploy?.restartPolicyMaxRetries, 10);
});

test("draining time covers SHUTDOWN_GRACE plus the time to store results and give jobs back", async () => {
  const pool = await poolService();
  assert.equal(pool.deploy?.drainingSeconds, DRAINING_SECONDS);
  assert.ok(DRAINING_SECONDS * 1000 >= SHUTDOWN_GRACE_MS + 5_000, "draining >= grace + 5 s");
  assert.deepEqual(pool.variables?.SHUTDOWN_GRACE, { type: "literal", value: String(SHUTDOWN_GRACE_MS) });
  assert.deepEqual(pool.variables?.RAILWAY_DEPLOYMENT_DRAINING_SECONDS, {
    type: "literal",
    value: String(DRAINING_SECONDS),
  });
});

test("variables: REDIS_URL references the database's private URL, the API key is never in the file", async () => {
  const pool = await poolService();
  const variables = pool.variables ?? {};
  assert.deepEqual(variables.REDIS_URL, {
    type: "reference",
    resource: `database.${REDIS_SERVICE}`,
    output: "REDIS_URL",
  });
  assert.deepEqual(variables.OPENAI_API_KEY, { type: "preserve" });
  assert.deepEqual(variables.LOG_FORMAT, { type: "literal", value: "json" });
  for (const [name, value] of Object.entries(variables)) {
    if (/KEY|SECRET|TOKEN|PASSWORD/.test(name)) {
      assert.notEqual(value.type, "literal", `${name} must not be committed as a literal`);
    }
  }
});

test("railway.toml, kept for reference, says the same as railway.ts", () => {
  const deploy = railwayTomlDeploy();
  assert.equal(deploy.startCommand, "python -m pool");
  assert.equal(deploy.restartPolicyType, RESTART_POLICY);
  assert.equal(Number(deploy.restartPolicyMaxRetries), RESTART_MAX_RETRIES);
  assert.equal(Number(deploy.drainingSeconds), DRAINING_SECONDS);
  assert.equal(deploy.healthcheckPath, HEALTHCHECK_PATH);
  assert.equal(Number(deploy.healthcheckTimeout), HEALTHCHECK_TIMEOUT_S);
});
