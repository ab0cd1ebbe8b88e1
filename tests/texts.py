"""Texts for the real-model tests and bench/bench_models.py, written for them (not the
loader's calibration sentences, not the standard library's docstrings of tests/test_model.py):
degenerate texts of four classes, two each, and ordinary short paragraphs in English and
Korean, on everyday and technical subjects."""

# what an embedding server is sent when a chunker or a scraper goes wrong
DEGENERATE = {
    "empty": ("", "\u200b\u200b"),  # nothing; zero-width spaces
    "whitespace": ("   ", "\n\t\n \n"),
    "punctuation": ("...", "• • •"),
    # characters the models' tokenizers do not know (each becomes [UNK])
    "unknown": ("𓀀𓀁𓀂𓀃", "ꦲꦏ꧀ꦱꦫ ꦗꦮ"),
}

ENGLISH = (
    "The night bus stops at every corner between the harbour and the university, so it"
    " takes almost an hour to cross the city after midnight.",
    "Before you repaint a window frame, scrape off the loose flakes and sand the wood until"
    " it feels smooth under your fingers.",
    "Our support team answers tickets in the order they arrive, except outages, which jump"
    " to the front of the queue.",
    "A cold front moving in from the west will bring heavy showers on Thursday and a sharp"
    " drop in temperature overnight.",
    "The recipe calls for two cups of rice, but brown rice needs more water and about fifteen"
    " extra minutes on the stove.",
    "When the cache is full, the least recently used entry is evicted to make room for the"
    " new one.",
    "Volunteers cleared three tonnes of plastic from the beach during the weekend, most of it"
    " bottle caps and fishing line.",
    "The invoice was paid twice by mistake, and the supplier has agreed to refund the second"
    " payment within ten working days.",
    "Her grandfather kept bees for forty years and sold the honey at the Saturday market in"
    " small glass jars.",
    "Each replica applies the write-ahead log it receives from the primary and can answer"
    " read-only queries meanwhile.",
    "The trail climbs steeply through pine forest for two kilometres before it reaches the"
    " lake and the old stone hut.",
    "Please bring your passport and the printed confirmation to the front desk when you check in.",
    "The orchestra rehearsed the second movement slowly at first, then at full tempo once"
    " the strings had settled.",
    "Sorting a list that is already almost in order is fast with insertion sort, which does"
    " little work on such input.",
    "The farmers switched to drip irrigation after three dry summers and now use half as"
    " much water on the same fields.",
    "A dentist recommends replacing your toothbrush every three months, or sooner if the"
    " bristles start to fray.",
    "The new bridge carries four lanes of traffic and a separate path for cyclists and"
    " people on foot.",
    "If the build fails on the main branch, nobody merges anything else until it is green again.",
    "The museum lends its oldest maps only to institutions that can keep them at a constant"
    " humidity.",
    "Tax returns for the previous year must be filed by the end of May, either online or at"
    " a local office.",
    "The kitten slept through the thunderstorm curled up in a laundry basket full of warm towels.",
    "A load balancer spreads incoming requests across several servers and stops sending"
    " traffic to one that fails its health check.",
    "The bakery on the corner sells out of rye bread by ten, so regulars order it the"
    " evening before.",
    "Satellite images showed the glacier had retreated by almost a kilometre in two decades.",
    "The training course covers first aid, fire safety and what to do when the alarm sounds"
    " during a night shift.",
    "He learned to play chess from his neighbour, who never let him win a single game in"
    " the first year.",
    "Encryption at rest protects the disks if they are stolen, but not data read by an"
    " attacker with a valid login.",
    "The ferry timetable changes in October, when the last crossing of the day moves an hour"
    " earlier.",
    "Most of the town's streetlights were replaced with LED lamps, which cut the electricity"
    " bill by a third.",
    "Students may borrow up to ten books at once and renew each of them twice unless"
    " someone has reserved it.",
    "The spacecraft will use the moon's gravity to bend its path towards the outer planets.",
    "A good commit message says what changed and why, in a short first line followed by details.",
    "The hotel's restaurant serves breakfast until half past ten and offers a vegetarian"
    " menu at dinner.",
    "The landslide closed the mountain road for a week while engineers checked the slope above it.",
    "Our warehouse ships orders placed before two in the afternoon on the same day.",
    "The researchers tracked the sleep of two hundred teenagers for a month using wrist sensors.",
    "A foreign key makes sure every order refers to a customer that actually exists.",
    "The village holds a harvest festival each autumn with music, a parade and long tables"
    " in the square.",
    "Turn off the main water valve before you replace the tap, or the kitchen will be"
    " flooded in seconds.",
    "The airline allows one cabin bag and one small personal item such as a handbag or"
    " laptop case.",
    "The painter mixed her own colours from pigments and linseed oil, as artists did"
    " centuries ago.",
    "Unit tests run on every push, and the slower integration tests run once a night.",
    "The park's oak trees are more than two hundred years old and are protected by law.",
    "A sudden rise in interest rates made many families postpone buying a house.",
    "The choir meets on Tuesday evenings in the church hall and welcomes new singers of any age.",
    "Logs older than ninety days are compressed and moved to cheaper storage.",
    "The marathon route follows the river for the first half and ends in front of the city hall.",
    "The doctor asked him to keep a diary of what he ate and when the headaches began.",
    "The wind farm off the coast produces enough electricity for about sixty thousand homes.",
    "Rotate the access keys of the service account every quarter and revoke the old ones.",
)

KOREAN = (
    "이번 주 토요일에는 도서관이 오후 두 시까지만 문을 열고 일요일에는 휴관합니다.",
    "김치찌개를 끓일 때는 잘 익은 김치와 돼지고기를 먼저 볶아야 국물 맛이 깊어집니다.",
    "새 버전의 앱은 로그인 속도가 빨라졌고 어두운 화면 모드를 지원합니다.",
    "장마가 시작되면서 남부 지방에는 이틀 동안 이백 밀리미터가 넘는 비가 내렸습니다.",
    "회의실 예약은 사내 포털에서 하실 수 있으며 최대 두 시간까지 가능합니다.",
    "할머니는 매년 가을마다 마당에서 고추를 말리고 겨울 김장을 준비하셨습니다.",
    "서버의 디스크 사용량이 구십 퍼센트를 넘으면 담당자에게 알림이 전송됩니다.",
    "제주도의 올레길은 해안을 따라 이어져 있어 바다를 보며 천천히 걸을 수 있습니다.",
    "택배는 주문 후 이틀 안에 도착하며 배송 상황은 문자로 안내해 드립니다.",
    "아이들은 방학 동안 과학관에서 로봇을 직접 만들어 보는 수업에 참여했습니다.",
    "이 약은 식후 삼십 분에 복용하시고 졸음이 올 수 있으니 운전은 피하세요.",
    "새로 생긴 카페는 직접 구운 빵과 핸드드립 커피로 동네 사람들에게 인기가 많습니다.",
    "트랜잭션이 끝나기 전에는 다른 세션에서 변경된 내용을 볼 수 없습니다.",
    "지난 겨울에는 한파 때문에 수도관이 얼어 터지는 사고가 여러 번 있었습니다.",
    "등산을 할 때는 물과 간식을 넉넉히 챙기고 해가 지기 전에 내려와야 합니다.",
    "우리 팀은 매주 월요일 아침에 지난주 작업을 돌아보고 이번 주 계획을 세웁니다.",
    "전기차 충전소가 아파트 지하 주차장에 열 곳 새로 설치되었습니다.",
    "시험 기간에는 학생들이 밤늦게까지 도서관 열람실에 남아 공부합니다.",
    "비밀번호는 열두 자 이상으로 만들고 다른 사이트와 같은 것을 쓰지 마세요.",
    "봄이 되면 강변을 따라 벚꽃이 피어 많은 사람들이 산책을 나옵니다.",
    "이 계약서에 서명하기 전에 해지 조건과 위약금 조항을 꼭 확인하시기 바랍니다.",
    "오래된 노트북의 배터리를 교체했더니 다시 다섯 시간 넘게 쓸 수 있게 되었습니다.",
    "시청 앞 광장에서는 매달 첫째 주 토요일에 벼룩시장이 열립니다.",
    "로그 파일이 너무 커지지 않도록 매일 밤 압축해서 다른 저장소로 옮깁니다.",
    "그는 어릴 때부터 바이올린을 배웠고 지금은 시립 교향악단에서 연주하고 있습니다.",
    "태풍이 북상하면서 모든 항공편과 여객선의 운항이 오후부터 중단되었습니다.",
    "된장국에 두부와 애호박을 넣고 마지막에 대파를 송송 썰어 올리면 완성입니다.",
    "고객 문의가 많은 시간대에는 상담원을 두 명 더 배치하기로 했습니다.",
    "이 다리는 지난해 보수 공사를 마쳐서 대형 트럭도 안전하게 지나갈 수 있습니다.",
    "우리 동네 체육관에서는 어르신을 위한 요가 수업을 무료로 운영합니다.",
    "백업은 매일 새벽 세 시에 실행되며 삼십 일 동안 보관됩니다.",
    "그 소설은 전쟁이 끝난 뒤 고향으로 돌아온 한 가족의 이야기를 담고 있습니다.",
    "환절기에는 일교차가 크니 얇은 옷을 여러 겹 입는 것이 좋습니다.",
    "새 직원은 첫 주 동안 선배와 함께 일하면서 업무 절차를 익히게 됩니다.",
    "농부들은 올해 가뭄에 대비해 저수지의 물을 미리 채워 두었습니다.",
    "검색 결과가 느리면 자주 쓰는 조건의 열에 인덱스를 추가해 보세요.",
    "박물관 특별전에서는 조선 시대의 생활 도구와 옷을 함께 전시합니다.",
    "아침마다 삼십 분씩 걷기 시작한 뒤로 잠을 훨씬 잘 자게 되었습니다.",
    "주차 요금은 처음 한 시간은 무료이고 이후 십 분마다 오백 원이 부과됩니다.",
    "이 강의는 온라인으로도 들을 수 있으며 녹화본은 일주일 동안 제공됩니다.",
    "바닷가 마을의 어민들은 새벽에 나가 잡은 생선을 아침 시장에서 팝니다.",
    "서비스 점검 시간에는 결제와 회원 가입이 잠시 중단됩니다.",
    "그녀는 은퇴한 뒤 시골로 이사해 작은 텃밭을 가꾸며 지냅니다.",
    "눈이 많이 내린 날에는 대중교통을 이용하고 자가용 운전은 자제해 주세요.",
    "코드 리뷰에서는 기능뿐 아니라 읽기 쉬운지와 테스트가 충분한지도 살펴봅니다.",
    "지역 축제에는 전통 음식 장터와 불꽃놀이가 준비되어 있습니다.",
    "병원 진료는 예약제로 운영되며 당일 접수는 오전 열한 시에 마감됩니다.",
    "고양이가 창가에 앉아 하루 종일 지나가는 새들을 구경합니다.",
    "환율이 오르면서 해외 여행을 계획하던 사람들이 일정을 미루고 있습니다.",
    "인증서가 만료되기 한 달 전에 자동으로 갱신되도록 설정해 두었습니다.",
)

ORDINARY = ENGLISH + KOREAN
