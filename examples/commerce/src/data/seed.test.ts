import { describe, expect, it } from "vitest";
import { CUSTOMERS, customerOf } from "../services/payments.js";
import { seedCustomers } from "./seed.js";

const EMAIL = /^[a-z0-9]+(\.[a-z0-9]+)*@example\.(com|org|net)$/;

describe("seed customers", () => {
  it("are the same people for the same seed, and different ones for another seed", () => {
    const customers = seedCustomers();
    expect(customers).toHaveLength(50);
    expect(seedCustomers()).toEqual(customers);
    expect(seedCustomers(50, 1)).not.toEqual(customers);
    // A longer list starts with the same customers.
    expect(seedCustomers(80).slice(0, 50)).toEqual(customers);
  });

  it("have unique ids and unique, well-formed e-mail addresses at reserved domains", () => {
    const customers = seedCustomers(500);
    expect(new Set(customers.map((c) => c.id)).size).toBe(500);
    expect(new Set(customers.map((c) => c.email)).size).toBe(500);
    for (const c of customers) expect(c.email).toMatch(EMAIL);
    expect(customers[0]?.id).toBe("customer-00");
    expect(customers[499]?.id).toBe("customer-499");
  });

  it("include a customer for every id the payments ledger charges", () => {
    const ids = new Set(seedCustomers(CUSTOMERS).map((c) => c.id));
    for (let i = 0; i < 1_000; i++) expect(ids.has(customerOf(`order-${i}`))).toBe(true);
  });

  it("live in both regions, with a billing address that names their city and country", () => {
    const customers = seedCustomers();
    expect(new Set(customers.map((c) => c.region))).toEqual(new Set(["eu", "us"]));
    for (const c of customers) {
      expect(c.name).toMatch(/^\S.* \S.*$/);
      expect(c.country).toMatch(/^[A-Z]{2}$/);
      expect(c.region === "us").toBe(c.country === "US");
      expect(c.billingAddress).toContain(c.city);
      expect(c.billingAddress).toMatch(/\d/);
      expect(c.billingAddress.endsWith(", United States")).toBe(c.country === "US");
    }
  });
});
