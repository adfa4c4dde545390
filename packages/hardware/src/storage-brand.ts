/**
 * Storage brand and model from a drive's model string. Drives report either
 * "<Brand> <model>" (`Samsung SSD 990 PRO 2TB`, `SAMSUNG MZ1L21T9HCLS-00A07`)
 * or a bare part number whose prefix belongs to one maker (`CT1000P5SSD8`).
 */
interface BrandRule {
  brand: string;
  /** Matches a leading brand word that is dropped from the model. */
  prefix?: RegExp;
  /** Matches a bare part number that keeps its text. */
  part?: RegExp;
}

const RULES: BrandRule[] = [
  { brand: "Samsung", prefix: /^samsung\s+/i, part: /^MZ[0-9A-Z]{6}/ },
  { brand: "WD", prefix: /^(wdc|western digital)\s+/i, part: /^WD/i },
  { brand: "SanDisk", prefix: /^sandisk\s+/i },
  { brand: "Intel", prefix: /^intel\s+/i, part: /^SSD(PE|SC)/ },
  { brand: "Solidigm", prefix: /^solidigm\s+/i, part: /^SSDPF/ },
  { brand: "Crucial", prefix: /^crucial\s+/i, part: /^CT\d/ },
  { brand: "Micron", prefix: /^micron[\s_]+/i, part: /^MTFD/ },
  { brand: "SK hynix", prefix: /^(sk ?hynix)\s+/i, part: /^(HFS|HFM|PC\d{3}\b)/ },
  { brand: "Kingston", prefix: /^kingston\s+/i, part: /^(SKC|SA400|SNV|SFYR)/ },
  { brand: "Seagate", prefix: /^seagate\s+/i, part: /^ST\d/ },
  { brand: "KIOXIA", prefix: /^kioxia\s+/i, part: /^KCD|^KXG/ },
  { brand: "Toshiba", prefix: /^toshiba\s+/i },
  { brand: "HGST", prefix: /^(hgst|hitachi)\s+/i },
  { brand: "Sabrent", prefix: /^sabrent\s*/i },
  { brand: "ADATA", prefix: /^adata\s+/i },
  { brand: "Corsair", prefix: /^corsair\s+/i },
  { brand: "Lexar", prefix: /^lexar\s+/i },
  { brand: "Phison", prefix: /^phison\s+/i },
  { brand: "Teamgroup", prefix: /^team(group)?\s+/i },
];

/** NVMe controllers always expose their PCI vendor, which names the maker when the model does not. */
const PCI_VENDORS: Record<string, string> = {
  "0x144d": "Samsung",
  "0x15b7": "WD",
  "0x1b96": "WD",
  "0x8086": "Intel",
  "0x025e": "Solidigm",
  "0x1344": "Micron",
  "0xc0a9": "Crucial",
  "0x1c5c": "SK hynix",
  "0x2646": "Kingston",
  "0x1bb1": "Seagate",
  "0x1e0f": "KIOXIA",
  "0x1179": "Toshiba",
  "0x1987": "Phison",
  "0x1cc1": "ADATA",
};

// Samsung OEM part numbers carry a customer suffix after the family and
// capacity (MZ1L21T9 HCLS-00A07); the fingerprint keeps the first eight
// characters so the same drive model matches across OEMs.
const SAMSUNG_OEM = /^(MZ[0-9A-Z]{6})[0-9A-Z]*(-[0-9A-Z]+)?$/;

export interface StorageIdentity {
  brand: string;
  model: string;
}

export function identifyDrive(rawModel: string, pciVendor = ""): StorageIdentity {
  const text = rawModel.replace(/\s+/g, " ").trim();
  let brand = "";
  let model = text;
  for (const rule of RULES) {
    const prefix = rule.prefix?.exec(text);
    if (prefix) {
      brand = rule.brand;
      model = text.slice(prefix[0].length).trim();
      break;
    }
    if (rule.part?.test(text)) {
      brand = rule.brand;
      break;
    }
  }
  if (brand === "") brand = PCI_VENDORS[pciVendor.trim().toLowerCase()] ?? "";
  const oem = SAMSUNG_OEM.exec(model);
  if (brand === "Samsung" && oem?.[1] !== undefined) model = oem[1];
  return { brand, model };
}
