import { seededRandom } from "@strata/core";

/** A product of the demo catalog. Prices are integers in minor units (cents). */
export interface Product {
  readonly id: string;
  readonly sku: string;
  readonly name: string;
  readonly category: string;
  readonly priceMinor: number;
  readonly currency: "EUR";
}

const ADJECTIVES = [
  "Classic",
  "Compact",
  "Deluxe",
  "Eco",
  "Heavy-duty",
  "Smart",
  "Vintage",
  "Wireless",
  "Travel",
  "Pro",
];
const NOUNS: Record<string, readonly string[]> = {
  kitchen: ["Kettle", "Toaster", "Blender", "Knife Set", "Coffee Grinder", "Dutch Oven"],
  garden: ["Hose", "Rake", "Planter", "Pruner", "Lawn Lamp", "Watering Can"],
  audio: ["Headphones", "Speaker", "Turntable", "Microphone", "Soundbar", "Radio"],
  sport: ["Yoga Mat", "Kettlebell", "Bike Light", "Running Vest", "Jump Rope", "Water Bottle"],
};

/** Builds the demo catalog deterministically from a seed (the same seed gives the same shop). */
export function seedCatalog(count = 300, seed = 2026): Product[] {
  const random = seededRandom(seed);
  const categories = Object.keys(NOUNS);
  const products: Product[] = [];
  for (let i = 0; i < count; i++) {
    const category = categories[Math.floor(random() * categories.length)] as string;
    const nouns = NOUNS[category] as readonly string[];
    const noun = nouns[Math.floor(random() * nouns.length)] as string;
    const adjective = ADJECTIVES[Math.floor(random() * ADJECTIVES.length)] as string;
    const id = `p-${String(i + 1).padStart(4, "0")}`;
    products.push({
      id,
      sku: `sku-${String(i + 1).padStart(5, "0")}`,
      name: `${adjective} ${noun}`,
      category,
      // 4.99 to 499.99, ending in 9
      priceMinor: Math.floor(random() * 49_500 + 499) - (Math.floor(random() * 49_500) % 10) + 9,
      currency: "EUR",
    });
  }
  return products;
}

/** Initial stock per SKU, deterministic. */
export function seedStock(products: readonly Product[], seed = 7): Map<string, number> {
  const random = seededRandom(seed);
  return new Map(products.map((p) => [p.sku, 20 + Math.floor(random() * 200)]));
}

/** Where a customer is served from: the demo's two regions. */
export type CustomerRegion = "eu" | "us";

/**
 * A customer of the demo shop. The id is the customer's account in the payments ledger, the one
 * `customerOf(orderId)` (services/payments.ts) names for an order, so documents about an order
 * can show the customer who paid for it.
 */
export interface Customer {
  /** `customer-00`, `customer-01`, … in creation order. */
  readonly id: string;
  readonly name: string;
  /** Lower-case ASCII at a reserved example domain (RFC 2606): never a real mailbox. */
  readonly email: string;
  readonly region: CustomerRegion;
  /** ISO 3166-1 alpha-2 code. */
  readonly country: string;
  readonly city: string;
  /** The whole billing address on one line: street, postal code and city, country. */
  readonly billingAddress: string;
}

interface CountryData {
  readonly name: string;
  readonly region: CustomerRegion;
  readonly firstNames: readonly string[];
  readonly lastNames: readonly string[];
  readonly streets: readonly string[];
  /** The street line from a street and a house number, as the country writes it. */
  readonly streetLine: (street: string, number: number) => string;
  /** [city, postal code] */
  readonly cities: readonly (readonly [string, string])[];
  /** The postal-code-and-city part, as the country writes it. */
  readonly cityLine: (city: string, postalCode: string) => string;
}

const numberAfter = (street: string, n: number): string => `${street} ${n}`;
const postalFirst = (city: string, postalCode: string): string => `${postalCode} ${city}`;

/** The countries customers live in, with names and addresses written as each country does. */
const COUNTRIES: Readonly<Record<string, CountryData>> = {
  DE: {
    name: "Germany",
    region: "eu",
    firstNames: ["Anna", "Lukas", "Sophie", "Jonas", "Marie", "Felix", "Lena", "Jürgen"],
    lastNames: ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Wagner", "Becker", "Groß"],
    streets: ["Hauptstraße", "Bahnhofstraße", "Gartenweg", "Lindenallee"],
    streetLine: numberAfter,
    cities: [
      ["Berlin", "10115"],
      ["Hamburg", "20095"],
      ["München", "80331"],
      ["Köln", "50667"],
    ],
    cityLine: postalFirst,
  },
  FR: {
    name: "France",
    region: "eu",
    firstNames: ["Camille", "Louis", "Chloé", "Hugo", "Léa", "Gabriel", "Manon", "Théo"],
    lastNames: ["Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Laurent", "Girard", "Roux"],
    streets: ["rue de la Paix", "avenue Victor Hugo", "boulevard Voltaire", "rue du Moulin"],
    streetLine: (street, n) => `${n} ${street}`,
    cities: [
      ["Paris", "75001"],
      ["Lyon", "69002"],
      ["Marseille", "13001"],
      ["Toulouse", "31000"],
    ],
    cityLine: postalFirst,
  },
  NL: {
    name: "Netherlands",
    region: "eu",
    firstNames: ["Daan", "Emma", "Sem", "Julia", "Lieke", "Bram", "Noor", "Thijs"],
    lastNames: ["de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit"],
    streets: ["Damstraat", "Kerkstraat", "Molenweg", "Prinsengracht"],
    streetLine: numberAfter,
    cities: [
      ["Amsterdam", "1012 AB"],
      ["Rotterdam", "3011 AD"],
      ["Utrecht", "3511 LX"],
    ],
    cityLine: postalFirst,
  },
  ES: {
    name: "Spain",
    region: "eu",
    firstNames: ["Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Pablo", "Alba", "Álvaro"],
    lastNames: ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez"],
    streets: ["Calle Mayor", "Calle de Alcalá", "Avenida del Puerto", "Plaza de España"],
    streetLine: (street, n) => `${street}, ${n}`,
    cities: [
      ["Madrid", "28013"],
      ["Barcelona", "08002"],
      ["Valencia", "46002"],
      ["Sevilla", "41004"],
    ],
    cityLine: postalFirst,
  },
  IT: {
    name: "Italy",
    region: "eu",
    firstNames: ["Giulia", "Francesco", "Sofia", "Alessandro", "Aurora", "Lorenzo", "Chiara"],
    lastNames: ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"],
    streets: ["Via Roma", "Via Garibaldi", "Corso Italia", "Via Dante"],
    streetLine: (street, n) => `${street}, ${n}`,
    cities: [
      ["Roma", "00184"],
      ["Milano", "20121"],
      ["Torino", "10121"],
      ["Bologna", "40121"],
    ],
    cityLine: postalFirst,
  },
  PL: {
    name: "Poland",
    region: "eu",
    firstNames: ["Zofia", "Jakub", "Hanna", "Łukasz", "Maja", "Szymon", "Mikołaj"],
    lastNames: ["Nowak", "Wójcik", "Kowalczyk", "Mazur", "Krawczyk", "Kaczmarek", "Zając"],
    streets: ["ul. Długa", "ul. Polna", "ul. Lipowa", "ul. Kwiatowa"],
    streetLine: numberAfter,
    cities: [
      ["Warszawa", "00-950"],
      ["Kraków", "31-042"],
      ["Gdańsk", "80-831"],
    ],
    cityLine: postalFirst,
  },
  SE: {
    name: "Sweden",
    region: "eu",
    firstNames: ["Alice", "William", "Maja", "Oscar", "Elsa", "Lucas", "Astrid"],
    lastNames: ["Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Öberg"],
    streets: ["Storgatan", "Drottninggatan", "Kungsgatan", "Ringvägen"],
    streetLine: numberAfter,
    cities: [
      ["Stockholm", "111 20"],
      ["Göteborg", "411 01"],
      ["Malmö", "211 20"],
    ],
    cityLine: postalFirst,
  },
  US: {
    name: "United States",
    region: "us",
    firstNames: ["Olivia", "Liam", "Emma", "Noah", "Ava", "Ethan", "Mia", "James"],
    lastNames: ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "O'Brien"],
    streets: ["Oak Street", "Maple Avenue", "Pine Road", "Cedar Lane", "Lakeview Drive"],
    // House numbers in the US run into the thousands.
    streetLine: (street, n) => `${n * 37} ${street}`,
    // The state goes with the ZIP code, as US addresses write it.
    cities: [
      ["New York", "NY 10001"],
      ["Chicago", "IL 60601"],
      ["Austin", "TX 78701"],
      ["Seattle", "WA 98101"],
      ["Denver", "CO 80202"],
      ["Boston", "MA 02108"],
    ],
    cityLine: (city, postalCode) => `${city}, ${postalCode}`,
  },
};

const EU_COUNTRIES = Object.keys(COUNTRIES).filter((c) => COUNTRIES[c]?.region === "eu");
const EMAIL_DOMAINS = ["example.com", "example.org", "example.net"];
/** Letters that Unicode decomposition does not reduce to ASCII. */
const FOLD: Readonly<Record<string, string>> = { ß: "ss", ł: "l", Ł: "L", ø: "o", æ: "ae" };

/** The ASCII letters and digits of a name, lower case: "Łukasz" → "lukasz", "O'Brien" → "obrien". */
function emailPart(name: string): string {
  return name
    .replace(/[ßłŁøæ]/g, (c) => FOLD[c] ?? c)
    .normalize("NFD")
    .replace(/[^A-Za-z0-9]/g, "")
    .toLowerCase();
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/**
 * Builds the demo's customers deterministically from a seed: names, e-mail addresses and billing
 * addresses from seven EU countries and the US (about a third in the US). Ids line up with the
 * payments ledger's accounts: `seedCustomers()` has one customer for every id `customerOf`
 * returns.
 *
 * @example
 * const byId = new Map(seedCustomers().map((c) => [c.id, c]));
 * byId.get(customerOf("order-17"))?.billingAddress; // e.g. "Hauptstraße 12, 10115 Berlin, Germany"
 */
export function seedCustomers(count = 50, seed = 2027): Customer[] {
  const random = seededRandom(seed);
  const emails = new Set<string>();
  const customers: Customer[] = [];
  for (let i = 0; i < count; i++) {
    const country = random() < 0.35 ? "US" : pick(random, EU_COUNTRIES);
    const data = COUNTRIES[country] as CountryData;
    const first = pick(random, data.firstNames);
    const last = pick(random, data.lastNames);
    const [city, postalCode] = pick(random, data.cities);
    const street = data.streetLine(pick(random, data.streets), 1 + Math.floor(random() * 120));
    const domain = pick(random, EMAIL_DOMAINS);
    // Two customers may share a name; their addresses may not.
    const local = `${emailPart(first)}.${emailPart(last)}`;
    let email = `${local}@${domain}`;
    for (let n = 2; emails.has(email); n++) email = `${local}${n}@${domain}`;
    emails.add(email);
    customers.push({
      id: `customer-${String(i).padStart(2, "0")}`,
      name: `${first} ${last}`,
      email,
      region: data.region,
      country,
      city,
      billingAddress: `${street}, ${data.cityLine(city, postalCode)}, ${data.name}`,
    });
  }
  return customers;
}
