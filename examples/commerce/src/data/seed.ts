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
